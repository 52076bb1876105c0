"""`metra downstream`: hierarchical control with frozen skills against flat SAC.

The hierarchical agent is SAC whose action picks a skill every K low-level steps (see
`SkillHierarchy`); the flat agent is SAC on the task's low-level actions from scratch. Both
see the same task observation and reward and are compared at equal low-level env steps.
"""

from __future__ import annotations

import dataclasses
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from metra.agents.sac import SACAgent, SACConfig
from metra.envs.base import EnvSpec, StepResult
from metra.envs.downstream import TASKS, TaskEnv, make_task
from metra.eval.plots import common_steps, write_comparison
from metra.eval.skills import EVAL_SEED, random_rollout
from metra.presets import require_counts
from metra.rollout import agent_policy, random_policy, rollout
from metra.run.checkpoint import Counters, has_checkpoint, load_checkpoint, save_checkpoint
from metra.run.folder import RunDir
from metra.run.logs import RunLogger, logged
from metra.run.loop import Cadence, epoch_seed, run_epochs
from metra.train.online import read_config, skill_replay, store
from metra.train.runs import load


def skill_from_action(action: np.ndarray, config: Any) -> np.ndarray:
    """A high-level action in [-1, 1]^D as a skill of the agent's prior: the one-hot of its
    argmax (discrete), its direction (unit sphere), itself scaled by 2 (Gaussian) or mapped
    to [0, 1] (uniform)."""
    action = np.asarray(action, np.float32)
    if config.discrete:
        return np.eye(action.shape[-1], dtype=np.float32)[action.argmax(-1)]
    if config.continuous_prior == "sphere":
        return action / (np.linalg.norm(action, axis=-1, keepdims=True) + 1e-8)
    if config.continuous_prior == "gaussian":
        return 2.0 * action
    return (action + 1.0) / 2.0


class SkillHierarchy:
    """A high-level batch env over a task: an action picks a skill, which the frozen skill
    policy follows deterministically for `skill_steps` low-level steps; the task's rewards
    over those steps are summed."""

    def __init__(self, task: TaskEnv, agent: Any, skill_steps: int = 25) -> None:
        if task.spec.episode_len % skill_steps:
            raise ValueError(f"skill_steps {skill_steps} must divide {task.spec.episode_len}")
        self.task, self.agent, self.skill_steps = task, agent, skill_steps
        self.num_envs = task.num_envs
        self.base_dim = task.info.base.obs_dim
        self.spec = EnvSpec(
            name=f"{task.spec.name}_hierarchical",
            obs_dim=task.spec.obs_dim,
            act_dim=agent.config.latent_dim,
            episode_len=task.spec.episode_len // skill_steps,
            coord_names=task.spec.coord_names,
            coord_index=task.spec.coord_index,
            goal_range=0.0,
        )

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        self._obs, coords = self.task.reset(seed)
        return self._obs, coords

    def step(self, actions: np.ndarray) -> StepResult:
        z = skill_from_action(actions, self.agent.config)
        total = np.zeros(self.num_envs, np.float32)
        for _ in range(self.skill_steps):
            low = self.agent.act(self._obs[:, : self.base_dim], z, deterministic=True)
            result = self.task.step(np.asarray(jax.device_get(low)))
            total += result.reward
            self._obs = result.obs
        return StepResult(
            obs=self._obs, reward=total, terminated=result.terminated, coords=result.coords
        )

    def set_coords(self, obs: np.ndarray, coords: np.ndarray) -> np.ndarray:
        return self.task.set_coords(obs, coords)

    def render(self, index: int = 0) -> np.ndarray:
        return self.task.render(index)

    def close(self) -> None:
        self.task.close()


@dataclass(frozen=True)
class DownstreamConfig:
    """One downstream run. Steps count low-level env steps for both agents."""

    task: str
    hierarchical: bool
    seed: int = 0
    total_steps: int = 400_000
    num_envs: int = 8  # episodes per epoch, stepped as one batch
    skill_steps: int = 25  # K: low-level steps per skill choice
    grad_steps: int = 50  # SAC updates per epoch
    batch_size: int = 256
    min_replay: int = 10_000  # transitions (of the agent's own level) before updates start
    replay_size: int = 1_000_000
    eval_every: int = 20_000  # low-level env steps between deterministic evaluations
    eval_episodes: int = 32  # episodes per evaluation, on fixed evaluation seeds
    sac: SACConfig = field(default_factory=SACConfig)

    def __post_init__(self) -> None:
        require_counts(
            self,
            *("total_steps", "num_envs", "skill_steps", "grad_steps", "batch_size"),
            *("min_replay", "replay_size", "eval_every", "eval_episodes"),
        )

    @classmethod
    def default(cls, task: str, hierarchical: bool, **changes: Any) -> DownstreamConfig:
        """The schedule of each level: the high level sees 1/K as many transitions, so it
        takes fewer updates per epoch and starts learning after fewer of them."""
        TASKS.check(task)
        level = dict(grad_steps=16, min_replay=512) if hierarchical else {}
        return cls(task=task, hierarchical=hierarchical, **{**level, **changes})


class DownstreamTrainer:
    """SAC on a task (flat) or on a skill hierarchy over it; logs returns to progress.csv."""

    def __init__(self, config: DownstreamConfig, run_dir: Path, skill_agent: Any = None):
        self.config, self.run_dir = config, Path(run_dir)
        if config.hierarchical and skill_agent is None:
            raise ValueError("a hierarchical run needs the frozen skill agent")
        self.env = self._make_env(config.num_envs, config.seed, skill_agent)
        self.eval_env = self._make_env(config.eval_episodes, EVAL_SEED, skill_agent)
        spec = self.env.spec
        self.low_steps_per_episode = self.env.spec.episode_len * (
            config.skill_steps if config.hierarchical else 1
        )
        self.replay = skill_replay(spec, config.replay_size, 0)
        self.agent = SACAgent.create(config.sac, spec.obs_dim, spec.act_dim, config.seed)
        self.counters = Counters()
        resume = has_checkpoint(self.run_dir)
        if resume:
            self.agent, self.counters = load_checkpoint(self.run_dir, self.agent, self.replay)
        RunDir(self.run_dir).write_config(dataclasses.asdict(config), resumed=resume)
        self.logger = RunLogger(self.run_dir, self.counters.env_steps if resume else None)

    def _make_env(self, n: int, seed: int, skill_agent: Any) -> Any:
        task = make_task(self.config.task, n, seed)
        if self.config.hierarchical:
            return SkillHierarchy(task, skill_agent, self.config.skill_steps)
        return task

    def _returns(self, policy: Any, env: Any, seed: int) -> tuple[float, Any]:
        traj = rollout(env, policy, seed)
        return float(traj.rewards.sum(0).mean()), traj

    def evaluate(self) -> dict[str, float]:
        """Mean return of deterministic episodes on the evaluation seed."""
        policy = agent_policy(self.agent, None, deterministic=True)
        return {"eval_return": self._returns(policy, self.eval_env, EVAL_SEED)[0]}

    def train_epoch(self) -> dict[str, float]:
        cfg, c = self.config, self.counters
        seed = epoch_seed(cfg.seed, c.epoch)
        if len(self.replay) < cfg.min_replay:
            policy = random_policy(self.env.spec.act_dim, seed)
        else:
            key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), c.epoch)
            policy = agent_policy(self.agent, None, deterministic=False, key=key)
        train_return, traj = self._returns(policy, self.env, seed)
        store(self.replay, traj, bootstrap_time_limit=True)
        c.env_steps += cfg.num_envs * self.low_steps_per_episode
        c.epoch += 1
        row = {"train_return": train_return}
        if len(self.replay) >= cfg.min_replay:
            rng = np.random.default_rng([cfg.seed, c.epoch, 1])
            self.agent, metrics = self.agent.update(
                self.replay.sample(rng, cfg.grad_steps, cfg.batch_size)
            )
            c.updates += cfg.grad_steps
            row.update({k: float(v) for k, v in metrics.items()})
        return row

    def save(self) -> None:
        save_checkpoint(self.run_dir, self.agent, self.counters, self.replay)

    def run(self, progress: bool = True) -> Path:
        cfg = self.config
        name = "hierarchical" if cfg.hierarchical else "flat"
        run_epochs(
            self,
            Cadence(cfg.total_steps, cfg.eval_every),
            lambda c: c.env_steps,
            f"{cfg.task} {name}",
            progress,
            "the same metra downstream command",
        )
        return self.run_dir


def random_return(task: str, episodes: int) -> float:
    """Mean return of uniformly random actions on the evaluation episodes: the floor."""
    with closing(make_task(task, episodes, EVAL_SEED)) as env:
        return float(random_rollout(env, EVAL_SEED).rewards.sum(0).mean())


def run_downstream(
    skill_run: str | Path,
    task: str,
    steps: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    flat: bool = True,
    progress: bool = True,
    **changes: Any,
) -> tuple[Path, Path]:
    """Train the hierarchical agent on the frozen skills of `skill_run` (and flat SAC, unless
    `flat` is False) on `task`; an existing OUT resumes. Returns (csv, png)."""
    skill_run = Path(skill_run)
    TASKS.check(task)
    env = read_config(skill_run).train.env
    needed = TASKS.load(task).info.base.name
    if env != needed:
        raise ValueError(f"task {task} needs skills trained on {needed}, {skill_run} is {env}")
    if steps is not None:
        changes["total_steps"] = steps
    out = Path(out) if out is not None else skill_run / "downstream" / task
    runs = {}
    for hierarchical in (True, False) if flat else (True,):
        name = "hierarchical" if hierarchical else "flat SAC"
        config = DownstreamConfig.default(task, hierarchical, seed=seed, **changes)
        agent = load(skill_run) if hierarchical else None
        run = RunDir(out / ("hierarchical" if hierarchical else "flat"))
        with run.claim(resumable=True):
            runs[name] = DownstreamTrainer(config, run.path, agent).run(progress)
    floor = random_return(task, DownstreamConfig.default(task, False, **changes).eval_episodes)
    curves = {name: common_steps([logged(run, "eval_return")]) for name, run in runs.items()}
    title = f"{task}: {TASKS.load(task).info.description}"
    ylabel = "eval return (deterministic)"
    return write_comparison(
        out, "downstream", curves, [floor], "eval_return", ylabel, title, "low-level env steps"
    )
