"""Success curves of an online QRL run (Fetch): OUT.csv and OUT.png, any-step and last-step
success of the run's evaluations against env steps, with the diagnostics that say why
(lambda, alpha, entropy, the random-pair distance) and the random policy's success from the
run's eval.json (`metra eval RUN_DIR`) as the floor.

    python bench/online_qrl_curve.py RUN_DIR OUT_PREFIX
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from metra.eval.plots import Curve, line_plot
from metra.run.logs import read_progress

DIAGNOSTICS = ("lambda", "alpha", "entropy", "d_random")


def main() -> None:
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    table, last = [], {}
    for row in read_progress(run):
        last.update({k: v for k, v in row.items() if v != ""})
        if row.get("success"):
            table.append(
                {
                    "env_steps": row["env_steps"],
                    "success_any_step": row["success"],
                    "success_last_step": row["success_last"],
                    **{k: row.get(k, "") for k in DIAGNOSTICS},
                }
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    x = np.array([int(r["env_steps"]) for r in table])
    curves = [
        Curve(label, x, np.array([float(r[key]) for r in table]))
        for label, key in (("any step", "success_any_step"), ("last step", "success_last_step"))
    ]
    floor = json.loads((run / "eval.json").read_text())["success_random_policy"]
    reference = Curve("random policy", np.zeros(1), np.array(floor))
    env = json.loads((run / "config.json").read_text())["train"]["env"]
    png = line_plot(out.with_suffix(".png"), curves, "env steps", "success rate", env, reference)
    print(out.with_suffix(".csv"), png, sep="\n")


if __name__ == "__main__":
    main()
