"""Nothing lost, nothing silently wrong: one writer per run folder, checkpoints and datasets
that verify themselves, signals, honest resumes, strict JSON and one-line CLI errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import metra
from metra.api import resolve_config
from metra.cli import main
from metra.envs import env_spec
from metra.errors import DamagedFileError, RunBusyError
from metra.run.checkpoint import load_arrays, load_checkpoint
from metra.run.folder import RunDir, dumps
from metra.train.online import create_agent, skill_replay
from tests.conftest import TINY

SHORT = [*TINY, "total_steps=1600"]


def _train(out: Path, overrides: list[str] = SHORT, **kwargs) -> Path:
    return metra.train("point", out=out, overrides=overrides, progress=False, **kwargs)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A 1600-step point run with a checkpoint: agent, replay, arrays and state."""
    return _train(tmp_path_factory.mktemp("runs") / "run")


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "copy"))


def _load_all(run: Path) -> None:
    config = resolve_config("point", overrides=SHORT)
    spec = env_spec("point")
    replay = skill_replay(spec, config.train.replay_size, config.agent.latent_dim)
    load_checkpoint(run, create_agent(config, spec), replay)
    load_arrays(run)


# ---- one writer -----------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_holder(finished_run, tmp_path) -> None:
    run = _copy(finished_run, tmp_path)
    with RunDir(run).hold(), RunDir(tmp_path / "new").hold():
        with pytest.raises(RunBusyError, match=f"pid {os.getpid()}"):
            metra.train(resume=run, steps=3200, progress=False)
        with pytest.raises(RunBusyError, match="being written by"):
            _train(tmp_path / "new")  # a new run takes the same lock
    assert len(list((run / "checkpoints").glob("agent-*"))) == 1
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == [".lock"]


def test_a_crashed_holder_leaves_no_stale_lock(tmp_path) -> None:
    holder = (
        "import sys, time; from metra.run.folder import RunDir\n"
        "with RunDir(sys.argv[1]).hold():\n    print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    with pytest.raises(RunBusyError, match=f"pid {proc.pid}"):
        RunDir(tmp_path / "run").hold().__enter__()
    proc.kill()  # a crash: no cleanup runs
    proc.wait()
    assert (tmp_path / "run" / ".lock").read_text()  # the holder's note is still there
    with RunDir(tmp_path / "run").hold():
        pass


def test_out_that_is_a_file_or_someone_elses_folder_is_refused_at_once(tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}')
    (mine / "progress.csv").write_text("my,data\n")
    start = time.time()
    assert main(["train", "--out", str(tmp_path / "notes.txt"), *SHORT]) == 2
    assert main(["train", "--out", str(mine), *SHORT]) == 2
    assert time.time() - start < 5  # before any env or network is built
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].endswith("notes.txt is a file: give a folder for the run")
    assert "is not empty and not a metra run folder" in err[1]
    assert (mine / "config.json").read_text() == '{"my": "settings"}'
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "argv", [["qrl", "--env", "fetch_reach"], ["sac", "--env", "half_cheetah"]]
)
def test_algo_override_on_a_one_algorithm_command_is_one_line(argv, tmp_path, capsys) -> None:
    assert main([*argv, "--steps", "100", "--out", str(tmp_path / "run"), "algo=crl"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "metra: error: algo=crl: this command trains one algorithm and has no algo= override"
        " (metra train takes algo=, metra meta-train --algo)"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---- checkpoints and datasets that verify themselves ------------------------------------------


def test_the_checkpoint_loads_exactly(finished_run) -> None:
    _load_all(finished_run)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_every_damaged_checkpoint_file_is_named(finished_run, tmp_path, damage) -> None:
    files = sorted(p.name for p in (finished_run / "checkpoints").iterdir())
    assert {f.split("-")[0] for f in files} == {"agent", "replay", "arrays", "state.json"}
    for name in files:
        run = _copy(finished_run, tmp_path / name)
        path = run / "checkpoints" / name
        data = bytearray(path.read_bytes())
        if damage == "flip":
            data[len(data) // 2] ^= 0x01
        else:
            data = data[: len(data) // 2]
        path.write_bytes(bytes(data))
        with pytest.raises(DamagedFileError, match=rf"{name} is (damaged|unreadable)") as err:
            _load_all(run)
        assert "\n" not in str(err.value)


def test_a_foreign_checkpoint_file_is_refused(finished_run, tmp_path) -> None:
    run = _copy(finished_run, tmp_path)
    other = _train(tmp_path / "other", [*SHORT, "seed=1"])
    replay = next((run / "checkpoints").glob("replay-*"))
    shutil.copy(next((other / "checkpoints").glob("replay-*")), replay)
    with pytest.raises(DamagedFileError, match="from another checkpoint"):
        _load_all(run)


def test_a_damaged_actor_stops_eval_with_one_line(finished_run, tmp_path, capsys) -> None:
    run = _copy(finished_run, tmp_path)
    agent = next((run / "checkpoints").glob("agent-*"))
    data = bytearray(agent.read_bytes())
    data[100:108] = os.urandom(8)
    agent.write_bytes(bytes(data))
    assert main(["eval", str(run)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (run / "eval.json").exists()


def test_a_damaged_dataset_is_named(tmp_path) -> None:
    from metra.data import generate_pointmaze, load_dataset, save_dataset

    path = tmp_path / "d.npz"
    save_dataset(path, generate_pointmaze("pointmaze-medium", 2, 20, 0.5, 0))
    load_dataset(path)
    data = dict(np.load(path))
    data["actions"][0, 0] += 1.0  # altered after it was written, checksum kept
    np.savez(path, **data)
    with pytest.raises(DamagedFileError, match="does not match its own checksum"):
        load_dataset(path)
    path.write_text("obs,actions\n1,2\n")
    with pytest.raises(DamagedFileError, match=r"not a readable \.npz dataset") as err:
        load_dataset(path)
    assert "allow_pickle" not in str(err.value)


def test_data_out_may_be_a_folder(tmp_path) -> None:
    argv = ["data", "pointmaze-medium", "--episodes", "2", "--episode-len", "10"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "pointmaze-medium-navigate-2ep.npz").is_file()


def test_json_outputs_are_strict() -> None:
    text = dumps({"a": float("nan"), "b": [np.float32(np.inf), np.int64(3)], "c": 1.5})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "a": None,
        "b": [None, 3],
        "c": 1.5,
    }


# ---- signals ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_checkpoints_exits_143_and_skips_the_evaluation(tmp_path) -> None:
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), *TINY, "total_steps=400000", "log_every=800"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "metra.cli", *argv], stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while not (run / "progress.csv").exists() or len((run / "progress.csv").read_text()) < 80:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and f"metra train --resume {run}" in err
    assert not (run / "eval.json").exists()
    steps = json.loads((run / "checkpoints" / "state.json").read_text())["counters"]["env_steps"]
    assert steps > 0 and steps % 800 == 0
    # The resume continues from that checkpoint (and may cut the total short of 400k).
    assert main(["train", "--resume", str(run), "--steps", str(steps + 800), "--no-eval"]) == 0
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["counters"]["env_steps"] == steps + 800


# ---- honest resumes -----------------------------------------------------------------------


def test_resuming_a_finished_run_says_so(finished_run, tmp_path, capsys) -> None:
    run = _copy(finished_run, tmp_path)
    before = (run / "config.json").read_text()
    assert main(["train", "--resume", str(run)]) == 2
    assert main(["train", "--resume", str(run), "--steps", "800"]) == 2
    assert main(["train", "--resume", str(run), "--steps", "3200", "hidden=64,64"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "is finished (1600 of 1600 steps)" in err[0] and "--steps N with N > 1600" in err[0]
    assert "--steps 800 is below the 1600 steps" in err[1]
    assert "a resumed run cannot change hidden; it may change lr" in err[2]
    assert (run / "config.json").read_text() == before  # nothing rewritten by a refusal


def test_resume_may_change_cadences_and_step_sizes(finished_run, tmp_path) -> None:
    run = _copy(finished_run, tmp_path)
    metra.train(resume=run, steps=2400, overrides=["eval_every=800", "lr=1e-4"], progress=False)
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["eval_every"] == 800 and config["agent"]["lr"] == 1e-4
    assert config["train"]["total_steps"] == 2400
    assert len(config["resumes"]) == 1 and config["provenance"]["jax"]


def test_resume_cuts_a_torn_last_log_line_and_names_a_garbage_one(finished_run, tmp_path) -> None:
    run = _copy(finished_run, tmp_path)
    progress = run / "progress.csv"
    rows = progress.read_text().splitlines()
    progress.write_text("\n".join(rows) + "\n2400,0.5,1")  # a crash mid-line
    metra.train(resume=run, steps=2400, progress=False)
    steps = [int(r.split(",")[0]) for r in progress.read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 2400
    lines = progress.read_text().splitlines()
    progress.write_text("\n".join([*lines[:2], "garbage", *lines[2:]]) + "\n")
    with pytest.raises(DamagedFileError, match=r"progress\.csv, line 3, is not a row"):
        metra.train(resume=run, steps=3200, progress=False)


def test_config_records_its_provenance(finished_run) -> None:
    record = json.loads((finished_run / "config.json").read_text())["provenance"]
    assert record["metra"] == metra.__version__
    assert record["device"].startswith("cpu") and record["mujoco"] and record["flax"]


# ---- a fast, honest CLI --------------------------------------------------------------------


def test_help_and_version_do_not_import_jax() -> None:
    code = (
        "import sys\nfrom metra.cli import main\n"
        "for argv in (['--help'], ['--version'], ['train', '--bogus']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "assert not {'jax', 'flax', 'mujoco'} & set(sys.modules), sorted(sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"metra {metra.__version__}" in out.stdout


def test_act_broadcasts_one_skill_or_names_the_shapes(finished_run) -> None:
    agent = metra.load(finished_run)
    obs, z = np.zeros((5, 2), np.float32), np.array([1.0, 0.0], np.float32)
    one = agent.act(obs, z, deterministic=True)
    np.testing.assert_array_equal(one, agent.act(obs, np.tile(z, (5, 1)), deterministic=True))
    with pytest.raises(ValueError, match=r"observations of shape \(5, 2\) and latents"):
        agent.act(obs, np.zeros((3, 2), np.float32), deterministic=True)


def test_the_point_frame_shows_walls_and_a_trail() -> None:
    from metra.envs.point import PointEnv

    env = PointEnv()
    env.reset(0)
    for _ in range(10):  # to x = 5, half way to the wall
        env.step(np.array([[1.0, 0.0]]))
    frame = env.render(0, 128)
    assert (frame[0] == 70).all() and (frame[:, -1] == 70).all()  # the walls
    assert ((frame == (230, 120, 120)).all(-1)).sum() > 20  # the trail behind the point
