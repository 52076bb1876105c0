import json

import pytest

from metra.cli import main
from tests.conftest import TINY


@pytest.mark.slow
def test_train_eval_plot_from_the_command_line(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert (
        main(["train", "--preset", "point", "--steps", "1600", "--out", str(out), *TINY[1:]]) == 0
    )
    result = json.loads((out / "eval.json").read_text())
    for key in ("coverage", "coverage_random_policy", "goal_final_distance"):
        assert key in result
    assert {"goal_success_3", "goal_success_1"} <= set(result)
    assert result["env_steps"] == 1600 and result["skills"] == 48
    assert main(["plot", str(out), "--video"]) == 0
    assert (out / "plots" / "skills.mp4").stat().st_size > 1000
    # A second train into the same folder must not clobber it.
    assert main(["train", "--out", str(out), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    # Resume to a longer budget.
    assert main(["train", "--resume", str(out), "--steps", "2400", "--no-eval"]) == 0
    assert (
        json.loads((out / "checkpoints" / "state.json").read_text())["counters"]["env_steps"]
        == 2400
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "nokey"], "is not key=value"),
        (["train", "bogus=1"], "unknown config key 'bogus'"),
        (["train", "grad_steps=abc"], "bad value 'abc'"),
        (["train", "grad_steps=0"], "must be >= 1"),
        (["train", "env=antt"], "known envs"),
        (["eval", "/nonexistent"], "not a metra run folder"),
    ],
)
def test_bad_input_gets_one_clear_error(argv, message, capsys, tmp_path) -> None:
    assert (
        main(
            [*argv[:1], *argv[1:], *(["--out", str(tmp_path / "r")] if argv[0] == "train" else [])]
        )
        == 2
    )
    assert message in capsys.readouterr().err


def test_help_lists_presets(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in ("ant", "half_cheetah", "point"))


def test_train_with_another_algorithm(tmp_path) -> None:
    out = tmp_path / "diayn"
    args = ["train", "--algo", "diayn", "--steps", "1600", "--out", str(out), "--no-eval"]
    assert main([*args, *TINY[1:]]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["algo"] == "diayn"
    assert config["agent"]["continuous_prior"] == "gaussian"  # DIAYN's own default survives
    assert config["agent"]["hidden"] == [32, 32]  # and so do the overrides
    with pytest.raises(SystemExit):
        main(["train", "--algo", "vic"])


@pytest.mark.parametrize("command", [["qrl"], ["sac"], ["meta-train"]])
def test_every_training_command_resumes_with_resume(command, tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*command, "--resume", str(empty)]) == 2
    assert "has no checkpoint to resume from" in capsys.readouterr().err
    assert main([*command, "--resume", str(empty), "--out", str(tmp_path / "x")]) == 2
    assert "give --out or --resume, not both" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "flag"), [(["qrl"], "--env"), (["meta-train"], "--task")])
def test_a_new_run_names_its_env(command, flag, capsys) -> None:
    assert main(command) == 2
    assert f"{flag} is required (or --resume RUN_DIR)" in capsys.readouterr().err
