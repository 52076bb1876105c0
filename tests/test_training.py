import csv
import json
import os
import signal

import jax
import numpy as np
import pytest

import metra
from metra.api import resolve_config
from metra.envs import env_spec
from metra.errors import RunInterrupted
from metra.presets import RunConfig
from metra.run.checkpoint import load_checkpoint, save_checkpoint
from metra.train.online import SkillTrainer, create_agent
from tests.conftest import TINY


def _run(config: RunConfig, run_dir, resume: bool = False):
    return SkillTrainer(config, run_dir, resume=resume, progress=False).run()


def _with_steps(config: RunConfig, steps: int) -> RunConfig:
    return config.with_train(total_steps=steps)


def _rows(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as f:
        return list(csv.DictReader(f))


def _actions(agent) -> np.ndarray:
    obs = np.linspace(-3, 3, 20, dtype=np.float32).reshape(10, 2)
    z = np.tile([[0.6, 0.8]], (10, 1)).astype(np.float32)
    return np.asarray(agent.act(obs, z, deterministic=True))


def test_run_folder_contents(tiny_config, tmp_path) -> None:
    run = _run(tiny_config, tmp_path / "run")
    assert json.loads((run / "config.json").read_text())["train"]["total_steps"] == 3200
    rows = _rows(run)
    assert next(iter(rows[0])) == "env_steps"
    assert [int(r["env_steps"]) for r in rows] == [800, 1600, 2400, 3200]
    assert [r["coverage"] != "" for r in rows] == [False, True, False, True]
    assert rows[-1]["lambda"] != ""
    assert any((run / "tb").iterdir())
    for name in ("skills_xy.png", "skills_phi.png", "coverage.png"):
        assert (run / "plots" / name).stat().st_size > 1000


@pytest.mark.parametrize("algo", ["lsd", "diayn", "dads", "cic"])
def test_every_baseline_trains_and_evaluates(algo: str, tmp_path) -> None:
    config = resolve_config("point", steps=1600, overrides=TINY, algo=algo)
    assert config.agent.hidden == (32, 32)  # overrides survive the switch of algorithm
    run = _run(config, tmp_path / "run")
    assert json.loads((run / "config.json").read_text())["train"]["algo"] == algo
    result = metra.evaluate(run, skills=8, goals=4)
    assert result["env_steps"] == 1600 and result["coverage"] > 0
    assert ("goal_success_3" in result) == (algo == "lsd")  # only LSD has the goal rule
    assert (run / "plots" / "skills_xy.png").exists()


def test_checkpoint_round_trip_gives_identical_actions(tiny_config, tmp_path) -> None:
    run = _run(tiny_config, tmp_path / "run")
    agent = metra.load(run)
    template = create_agent(tiny_config, env_spec("point"))
    assert not np.allclose(_actions(agent), _actions(template))  # really trained and restored
    save_checkpoint(tmp_path / "copy", agent, load_checkpoint(run, template)[1], None)
    again = load_checkpoint(tmp_path / "copy", template)[0]
    np.testing.assert_array_equal(_actions(again), _actions(agent))
    np.testing.assert_array_equal(again.obs_std, agent.obs_std)


@pytest.mark.parametrize(
    ("collect", "epochs"),
    # Overlapped: the first call collects two epochs, so 3 update blocks reach 3200 steps.
    [("serial", 4), ("overlapped", 3)],
)
@pytest.mark.slow
def test_resume_continues_exactly(tiny_config, tmp_path, collect, epochs) -> None:
    tiny_config = tiny_config.with_train(collect=collect)
    straight = _run(tiny_config, tmp_path / "straight")
    half = _run(_with_steps(tiny_config, 1600), tmp_path / "resumed")
    # Pretend a crash after a log row that the checkpoint did not reach.
    with open(half / "progress.csv", "a") as f:
        f.write("2400" + "," * (len(_rows(half)[0]) - 1) + "\n")
    resumed = _run(tiny_config, half, resume=True)
    _, counters = load_checkpoint(resumed, create_agent(tiny_config, env_spec("point")))
    assert (counters.env_steps, counters.epoch, counters.updates) == (3200, epochs, 4 * epochs)
    np.testing.assert_array_equal(_actions(metra.load(resumed)), _actions(metra.load(straight)))
    timeless = ("time_s", "env_steps_per_s", "updates_per_s")

    def strip(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k not in timeless} for r in rows]

    assert strip(_rows(resumed)) == strip(_rows(straight))


@pytest.mark.slow
def test_same_seed_same_run_other_seed_other_run(tiny_config, tmp_path) -> None:
    small = _with_steps(tiny_config, 1600)
    a = metra.load(_run(small, tmp_path / "a"))
    b = metra.load(_run(small, tmp_path / "b"))
    np.testing.assert_array_equal(_actions(a), _actions(b))
    other = small.with_train(seed=1)
    c = metra.load(_run(other, tmp_path / "c"))
    assert not np.allclose(_actions(a), _actions(c))
    overlapped = small.with_train(collect="overlapped")
    d = metra.load(_run(overlapped, tmp_path / "d"))
    e = metra.load(_run(overlapped, tmp_path / "e"))
    np.testing.assert_array_equal(_actions(d), _actions(e))  # repeatable with a collector thread
    assert not np.allclose(_actions(a), _actions(d))  # and a schedule of its own


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_writes_a_final_checkpoint(tiny_config, tmp_path, monkeypatch, signum) -> None:
    trainer = SkillTrainer(tiny_config, tmp_path / "run", resume=False, progress=False)
    real_update = trainer._update

    def update_then_signal():
        metrics = real_update()
        os.kill(os.getpid(), signum)  # as if Ctrl-C or the job scheduler's SIGTERM came mid-run
        return metrics

    monkeypatch.setattr(trainer, "_update", update_then_signal)
    with pytest.raises(RunInterrupted, match="checkpoint is written") as stopped:
        trainer.run()
    assert stopped.value.exit_code == 128 + signum
    template = create_agent(tiny_config, env_spec("point"))
    _, counters = load_checkpoint(tmp_path / "run", template)
    assert counters.env_steps == 800  # stopped after the first epoch, nothing lost


def test_non_finite_loss_is_reported(tiny_config, tmp_path) -> None:
    bad = resolve_config("point", overrides=["total_steps=1600", "min_replay=800", "lr=1e30"])
    with pytest.raises(FloatingPointError, match="non-finite"):
        _run(bad, tmp_path / "run")


def test_missing_or_corrupt_checkpoint_is_a_clear_error(tiny_config, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a metra run folder"):
        metra.load(tmp_path)
    run = _run(_with_steps(tiny_config, 800), tmp_path / "run")
    agent_file = next((run / "checkpoints").glob("agent-*.msgpack"))
    agent_file.write_bytes(agent_file.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"agent-000000000800\.msgpack is damaged"):
        metra.load(run)


def test_act_keys_on_loaded_agent(tiny_config, tmp_path) -> None:
    agent = metra.load(_run(_with_steps(tiny_config, 800), tmp_path / "run"))
    obs, z = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32) / np.sqrt(2)
    assert agent.act(obs, z, key=jax.random.PRNGKey(0)).shape == (2, 2)
    assert agent.phi(obs).shape == (2, 2)


def test_export_ships_weights_only(tiny_config, tmp_path) -> None:
    run = _run(tiny_config, tmp_path / "run")
    shipped = metra.export(run, tmp_path / "shipped")
    np.testing.assert_array_equal(_actions(metra.load(shipped)), _actions(metra.load(run)))
    np.testing.assert_array_equal(metra.load(shipped).obs_std, metra.load(run).obs_std)
    size = sum(f.stat().st_size for f in (shipped / "checkpoints").iterdir())
    agent_size = next((run / "checkpoints").glob("agent-*")).stat().st_size
    assert size < 0.6 * agent_size  # no optimizer moments, no target critics, no replay
    result = metra.evaluate(shipped, skills=8, goals=4, goal_range=2.0)
    assert result["env_steps"] == 3200 and result["goal_range"] == 2.0
    with pytest.raises(ValueError, match="weights only"):
        SkillTrainer(tiny_config, shipped, resume=True, progress=False)
    with pytest.raises(FileExistsError, match="not empty"):
        metra.export(run, shipped)


def test_diagnostics_curves(tiny_config, tmp_path) -> None:
    from metra.eval.plots import DIAGNOSTICS, write_diagnostics

    run = _run(tiny_config, tmp_path / "run")
    csv_path, png = write_diagnostics([run], tmp_path / "out" / "diag")
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["env_steps"]) for r in rows] == [1600, 3200]  # one row per evaluation
    assert all(rows[-1][k] != "" for k in DIAGNOSTICS)
    assert int(float(rows[-1]["train_coverage"])) >= int(float(rows[0]["train_coverage"])) > 0
    assert png.stat().st_size > 10_000
