"""A finished run folder read back: `metra eval`, `metra plot`, `metra export` and
`metra.load` (skill runs, and QRL and SAC runs through their workflows' loaders)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from metra.envs import env_spec
from metra.eval.goals import goal_reaching
from metra.eval.plots import plot_coverage_curve, plot_skills
from metra.eval.skills import (
    EVAL_SEED,
    evaluation_count,
    evaluation_draw,
    random_coverage,
    skill_metrics,
    skill_trajectories,
)
from metra.eval.video import skill_video
from metra.run.checkpoint import Counters, load_checkpoint, save_weights
from metra.run.folder import CONFIG_FILE, EVAL_FILE, PROGRESS_FILE, write_json
from metra.train.goals import evaluate_goal_run, is_goal_run, load_goal_run
from metra.train.online import create_agent, read_config
from metra.train.sac import evaluate_sac_run, is_sac_run, load_sac_run


def _restore(run_dir: Path) -> tuple[Any, Any, Counters]:
    if is_goal_run(run_dir):  # QRL: a GoalRunConfig and a QRLAgent
        return load_goal_run(run_dir)
    if is_sac_run(run_dir):  # metra sac: a SACRunConfig and a SACAgent
        return load_sac_run(run_dir)
    config = read_config(run_dir)
    template = create_agent(config, env_spec(config.train.env))
    return (config, *load_checkpoint(run_dir, template))


def load(run_dir: str | Path) -> Any:
    """The trained agent of a run folder: `act(obs, z, deterministic=...)`; a skill agent's
    `phi(obs)`, or a QRL agent's `distance(obs, goal)` (its latent z is the goal; a `metra
    sac` agent has none)."""
    return _restore(Path(run_dir))[1]


def evaluate(
    run_dir: str | Path, skills: int = 48, goals: int = 50, goal_range: float | None = None
) -> dict[str, Any]:
    """Coverage, and zero-shot goal reaching (goals within +-goal_range of the start; default
    the env's) for agents with a goal rule (METRA, LSD) and continuous skills; writes
    RUN_DIR/eval.json. A QRL run: success over its env's evaluation tasks, `goals` episodes
    per task, beside a random policy's. A `metra sac` run: its evaluation return and a
    random policy's."""
    run_dir = Path(run_dir)
    if is_goal_run(run_dir):
        return evaluate_goal_run(run_dir, goals)
    if is_sac_run(run_dir):
        return evaluate_sac_run(run_dir)
    config, agent, counters = _restore(run_dir)
    env_name = config.train.env
    spec = env_spec(env_name)
    draw = evaluation_draw(config.train.eval_fresh_skills, counters.env_steps)
    traj = skill_trajectories(agent, env_name, skills, draw=draw)
    result: dict[str, Any] = {
        "env": env_name,
        "env_steps": counters.env_steps,
        "skills": int(traj.latents.shape[1]),
        **skill_metrics(traj, spec),
        "coverage_random_policy": random_coverage(env_name, int(traj.latents.shape[1])),
    }
    if hasattr(agent, "goal_latent") and not agent.config.discrete and spec.goal_range > 0:
        result.update(goal_reaching(agent, env_name, goals, EVAL_SEED, goal_range))
    write_json(run_dir / EVAL_FILE, result)
    return result


def plot(run_dir: str | Path, skills: int = 48, video: bool = False) -> list[Path]:
    """Skill plots, the coverage curve and (optionally) an MP4 of 4 skills in RUN_DIR/plots."""
    run_dir = Path(run_dir)
    config, agent, counters = _restore(run_dir)
    env_name = config.train.env
    draw = evaluation_draw(config.train.eval_fresh_skills, counters.env_steps)
    traj = skill_trajectories(agent, env_name, skills, draw=draw)
    paths = plot_skills(traj, agent, env_spec(env_name), run_dir / "plots")
    episodes = evaluation_count(
        agent.config.discrete, agent.config.latent_dim, config.train.eval_skills
    )
    curve = plot_coverage_curve(run_dir, env_name, episodes)
    if curve is not None:
        paths.append(curve)
    if video:
        latents = traj.latents[0][:: max(1, len(traj.latents[0]) // 4)][:4]
        paths.append(skill_video(agent, env_name, latents, run_dir / "plots" / "skills.mp4"))
    return paths


# What `export` copies beside the weights: the config, and the figures that show the result.
EXPORTED_FILES = (CONFIG_FILE, PROGRESS_FILE, EVAL_FILE, "success.png")


def export(run_dir: str | Path, out_dir: str | Path) -> Path:
    """A small, shippable copy of a run folder: its weights without optimizer states, target
    critics or replay, with config, progress, eval and plots. `load`, `evaluate`, `plot` and
    `metra downstream` accept it as they accept the run."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty: export into a new folder")
    _, agent, counters = _restore(run_dir)
    save_weights(out_dir, agent, counters)
    for name in EXPORTED_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, out_dir / name)
    if (run_dir / "plots").is_dir():
        shutil.copytree(run_dir / "plots", out_dir / "plots", dirs_exist_ok=True)
    return out_dir
