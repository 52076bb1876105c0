"""`metra compare`: runs in parallel processes, resumable, one CSV and PNG."""

import csv

import pytest

from metra.compare import compare, final_table
from metra.run.checkpoint import saved_env_steps
from tests.conftest import TINY


@pytest.mark.slow
def test_compare_two_algorithms(tmp_path) -> None:
    out = tmp_path / "cmp"
    overrides = [*TINY[1:], "eval_every=800"]
    csv_path, png = compare("point", ["metra", "diayn"], 1600, 1, out, 2, overrides, False)
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert {(r["algo"], r["env_steps"]) for r in rows} >= {
        ("metra", "800"),
        ("metra", "1600"),
        ("diayn", "1600"),
        ("random", "1600"),
    }
    assert all(int(r["seeds"]) == 1 and float(r["coverage_mean"]) > 0 for r in rows)
    assert png.stat().st_size > 1000
    table = final_table(csv_path).splitlines()
    assert [line.split(" | ")[0] for line in table[2:]] == ["| metra", "| diayn", "| random"]
    assert saved_env_steps(out / "diayn-seed0") == 1600
    # A rerun with a larger budget resumes the runs instead of starting over.
    log = (out / "metra-seed0.log").read_text()
    compare("point", ["metra"], 2400, 1, out, 1, overrides, False)
    assert saved_env_steps(out / "metra-seed0") == 2400
    assert (out / "metra-seed0.log").read_text().startswith(log)


def test_compare_rejects_unknown_algorithms(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown algos"):
        compare("point", ["metra", "vic"], 800, 1, tmp_path)
