"""`metra qrl`: goal-conditioned QRL, offline from a dataset file or online in the env.

Offline, an epoch is `grad_steps` gradient steps on batches relabeled from the dataset's
episodes, and progress counts gradient steps (OGBench trains 1M). Online, an epoch collects
`num_envs` episodes toward random goals (uniform random actions until `min_replay_episodes`
episodes are in), then `grad_steps` updates; progress counts env steps. Either way success
is the benchmark's own: on each evaluation task (or random goals), whether a deterministic
episode reaches its goal at any step (Fetch, whose episodes go on, also reports the last
step).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jax
import numpy as np

from metra.agents.qrl import QRLAgent, QRLConfig
from metra.data import load_dataset
from metra.envs.base import EVAL_SEED
from metra.envs.goals import GoalEnvBatch, GoalEnvSpec, goal_env_spec, make_goal_envs
from metra.eval.plots import Curve, line_plot
from metra.presets import (
    apply_overrides,
    check_logger,
    require_counts,
    resume_overrides,
)
from metra.replay import ACTOR_GOALS, ReplayBuffer, episode_buffer, sample_goal_batch
from metra.rollout import agent_policy, random_policy, rollout_from
from metra.run.checkpoint import (
    Counters,
    has_checkpoint,
    load_checkpoint,
    resume_to,
    save_checkpoint,
)
from metra.run.config import SectionedConfig
from metra.run.folder import EVAL_FILE, RunDir, write_json
from metra.run.logs import RunLogger, import_wandb, logged
from metra.run.loop import Cadence, epoch_seed, finite_metrics, run_epochs


@dataclass(frozen=True)
class GoalTrainConfig:
    """One QRL run; `data` set means offline. Defaults are OGBench's (batch 1024, 1M steps)."""

    env: str
    data: str | None = None  # offline dataset (`metra data`); None trains online
    seed: int = 0
    total_steps: int = 1_000_000  # offline: gradient steps; online: env steps
    batch_size: int = 1024
    grad_steps: int = 50  # gradient steps per epoch (one jitted call)
    num_envs: int = 4  # online: episodes collected per epoch
    min_replay_episodes: int = 20  # online: episodes of random actions before updates start
    replay_episodes: int = 20_000  # online: episodes kept
    eval_every: int = 100_000  # steps (as counted above) between evaluations
    # per evaluation task, or in all when the env has no tasks. OGBench: 50 per task (a 5-task
    # mean then has a standard error near 0.03); 10 (ours before) for quick runs.
    eval_episodes: int = 50
    # online: std of the Gaussian noise added to the actor's sampled actions (then clipped to
    # [-1, 1]) while collecting; the official online QRL: 0.3 (`exploration_eps`)
    exploration_noise: float = 0.0
    # the actor's goals (`sample_goal_batch`): "future" (OGBench) or "mixed" (the official
    # online: half random states, half geometric future states at `future_discount`)
    actor_goals: str = "future"
    future_discount: float = 0.99
    logger: str = "csv"  # "wandb" also logs to Weights & Biases (pip install "metra[wandb]")

    def __post_init__(self) -> None:
        require_counts(
            self,
            *("total_steps", "batch_size", "grad_steps", "num_envs", "min_replay_episodes"),
            *("replay_episodes", "eval_every", "eval_episodes"),
        )
        check_logger(self.logger)
        if self.actor_goals not in ACTOR_GOALS:
            raise ValueError(f"actor_goals must be one of {ACTOR_GOALS}, got {self.actor_goals!r}")
        if self.exploration_noise < 0 or not 0 < self.future_discount <= 1:
            raise ValueError("QRL needs exploration_noise >= 0 and 0 < future_discount <= 1")

    @property
    def offline(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class GoalRunConfig(SectionedConfig):
    """Everything that defines a QRL run; written as config.json in the run folder."""

    train: GoalTrainConfig
    agent: QRLConfig = field(default_factory=QRLConfig)

    TRAIN: ClassVar[type] = GoalTrainConfig
    AGENT: ClassVar[type | None] = QRLConfig
    # Runs made before the OGBench actor existed trained the tanh-Gaussian actor (their
    # activation, init and critics are the dataclass defaults, or saved).
    AGENT_BEFORE: ClassVar[dict[str, Any]] = {"offline_actor": "tanh"}
    # The unit in the name: QRL's replay counts episodes (the skill trainer's transitions);
    # the budget is `total_steps` in every workflow.
    TRAIN_RENAMED: ClassVar[dict[str, str]] = {
        "min_replay": "min_replay_episodes",
        "replay_size": "replay_episodes",
        "steps": "total_steps",
    }

    @classmethod
    def default(cls, env: str, data: str | None = None) -> GoalRunConfig:
        """Offline: OGBench's DDPG+BC agent (`QRLConfig.offline()`) and schedule. Online: the
        official online QRL's losses (`QRLConfig.official_online()`) and schedule: 200 random
        episodes (10k Fetch steps) first, then 10 episodes and 500 updates of batch 256 per
        cycle (one update per env step), exploration noise 0.3, mixed actor goals, an
        evaluation of 50 episodes every 2,000 env steps."""
        if data is not None:
            return cls(GoalTrainConfig(env=env, data=data), QRLConfig.offline())
        train = GoalTrainConfig(
            env=env,
            batch_size=256,
            num_envs=10,
            grad_steps=500,
            min_replay_episodes=200,
            eval_every=2000,
            exploration_noise=0.3,
            actor_goals="mixed",
        )
        return cls(train, QRLConfig.official_online())


def dataset_episodes(data: dict[str, np.ndarray]) -> ReplayBuffer:
    """An episode buffer holding a dataset (every episode must have the same length)."""
    ends = np.flatnonzero(data["terminals"]) + 1
    lengths = np.diff(np.concatenate([[0], ends]))
    if len(set(lengths.tolist())) != 1:
        raise ValueError(
            f"the dataset's episodes have lengths {sorted(set(lengths.tolist()))[:5]}...; QRL's "
            "goal relabeling needs equal lengths: regenerate it with `metra data`"
        )
    n, length = len(lengths), int(lengths[0])
    obs_dim, act_dim = data["observations"].shape[1], data["actions"].shape[1]
    buffer = episode_buffer(n, length, obs_dim, act_dim)
    buffer.add(
        {
            "obs": data["observations"].reshape(n, length, obs_dim),
            "action": data["actions"].reshape(n, length, act_dim),
            "next_obs": data["next_observations"].reshape(n, length, obs_dim),
        }
    )
    return buffer


def success_rate(
    agent: QRLAgent | None, env_name: str, episodes: int, seed: int = EVAL_SEED
) -> dict[str, float]:
    """Success of deterministic episodes at any step, as OGBench and the official QRL count
    it: per evaluation task (`task1`...) and overall. Envs whose episodes go on after success
    (Fetch) also report `success_last`, success at the last step. `agent` None: uniformly
    random actions (the floor every figure is read against)."""
    with closing(make_goal_envs(env_name, seed, episodes)) as envs:
        spec = envs.spec
        tasks: list[int | None] = list(range(1, spec.eval_tasks + 1)) or [None]
        scores = {}
        last = []
        for task in tasks:
            start = envs.reset(seed, task)
            if agent is None:
                policy = random_policy(spec.act_dim, seed, envs.goals)
            else:
                policy = agent_policy(agent, envs.goals, deterministic=True)
            traj = rollout_from(envs, start, policy)
            scores[f"task{task}" if task else "success"] = float(traj.ever("success").mean())
            last.append(float(traj.last("success").mean()))
        if spec.eval_tasks:
            scores["success"] = float(np.mean(list(scores.values())))
        if not spec.ends_at_success:
            scores["success_last"] = float(np.mean(last))
        return scores


def is_goal_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a QRL run (or a shipped QRL agent) rather than a skill run."""
    run = RunDir(run_dir)
    if not run.config_path.exists():
        return False
    data = run.read_config()
    return "preset" not in data and "data" in data.get("train", {})


def create_goal_agent(config: GoalRunConfig) -> QRLAgent:
    """A fresh agent for `config` (also the template a checkpoint restores into)."""
    spec = goal_env_spec(config.train.env)
    return QRLAgent.create(
        config.agent,
        spec.obs_dim,
        spec.act_dim,
        config.train.seed,
        goal_dim=None if spec.goal_is_state else spec.goal_dim,
    )


def load_goal_run(run_dir: Path) -> tuple[GoalRunConfig, QRLAgent, Counters]:
    """The config, trained agent and counters of a QRL run folder (or a weights-only copy)."""
    config = GoalRunConfig.from_dict(RunDir(run_dir).read_config())
    return (config, *load_checkpoint(Path(run_dir), create_goal_agent(config)))


def evaluate_goal_run(run_dir: Path, episodes: int = 50) -> dict[str, Any]:
    """Success over the env's evaluation tasks (`episodes` per task) beside a random policy's;
    writes RUN_DIR/eval.json."""
    config, agent, counters = load_goal_run(run_dir)
    env = config.train.env
    result: dict[str, Any] = {
        "env": env,
        "grad_steps": counters.updates,
        "episodes_per_task": episodes,
        **success_rate(agent, env, episodes),
        "success_random_policy": success_rate(None, env, episodes)["success"],
    }
    write_json(Path(run_dir) / EVAL_FILE, result)
    return result


class GoalTrainer:
    """Owns the data (dataset or replay), the agent and the logs of one QRL run folder."""

    def __init__(self, config: GoalRunConfig, run_dir: Path, data: dict[str, np.ndarray] | None):
        self.config, self.cfg = config, config.train
        self.run_dir = Path(run_dir)
        if self.cfg.logger == "wandb":
            import_wandb()  # a missing wandb fails here, before any work
        self.spec: GoalEnvSpec = goal_env_spec(self.cfg.env)
        spec = self.spec
        self.envs: GoalEnvBatch | None = None  # offline: evaluation builds its own
        if self.cfg.offline:
            if data is None:
                raise ValueError("an offline run needs its dataset")
            self.buffer = dataset_episodes(data)
        else:
            self.envs = make_goal_envs(self.cfg.env, self.cfg.seed, self.cfg.num_envs)
            self.buffer = episode_buffer(
                self.cfg.replay_episodes, spec.episode_len, spec.obs_dim, spec.act_dim
            )
        self.goal_index = None if spec.goal_is_state else spec.goal_index
        self.agent = create_goal_agent(config)
        self.counters = Counters()
        resume = has_checkpoint(self.run_dir)
        if resume:
            replay = None if self.cfg.offline else self.buffer
            self.agent, self.counters = load_checkpoint(self.run_dir, self.agent, replay)
        RunDir(self.run_dir).write_config(config.to_dict(), resumed=resume)
        self.logger = RunLogger(
            self.run_dir,
            self.steps(self.counters) if resume else None,
            self.step_name,
            wandb=self.cfg.logger == "wandb",
        )

    @property
    def step_name(self) -> str:
        return "grad_steps" if self.cfg.offline else "env_steps"

    def steps(self, counters: Counters) -> int:
        return counters.updates if self.cfg.offline else counters.env_steps

    def _collect(self) -> None:
        cfg, c = self.cfg, self.counters
        seed = epoch_seed(cfg.seed, c.epoch)
        envs = self.envs
        assert envs is not None
        start = envs.reset(seed)
        if len(self.buffer) < cfg.min_replay_episodes:
            policy = random_policy(self.spec.act_dim, seed, envs.goals)
        else:
            key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), c.epoch)
            policy = agent_policy(
                self.agent, envs.goals, False, key, noise=cfg.exploration_noise, seed=seed
            )
        traj = rollout_from(envs, start, policy)
        if (traj.lengths < self.spec.episode_len).any():
            raise RuntimeError(f"{cfg.env} ended episodes early: online QRL needs full episodes")
        rows = traj.env_major()
        self.buffer.add({k: rows[k] for k in ("obs", "action", "next_obs")})
        c.env_steps += cfg.num_envs * self.spec.episode_len

    def train_epoch(self) -> dict[str, float]:
        cfg, c = self.cfg, self.counters
        if not cfg.offline:
            self._collect()
        c.epoch += 1
        if len(self.buffer) < (1 if cfg.offline else cfg.min_replay_episodes):
            return {}
        rng = np.random.default_rng([cfg.seed, c.epoch, 1])
        samples = [
            sample_goal_batch(
                self.buffer,
                rng,
                cfg.batch_size,
                self.goal_index,
                cfg.actor_goals,
                cfg.future_discount,
            )
            for _ in range(cfg.grad_steps)
        ]
        batches = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
        self.agent, metrics = self.agent.update(batches)
        c.updates += cfg.grad_steps
        return finite_metrics(metrics, f"{self.step_name} {self.steps(c)}")

    def evaluate(self) -> dict[str, float]:
        return success_rate(self.agent, self.cfg.env, self.cfg.eval_episodes)

    def save(self) -> None:
        save_checkpoint(
            self.run_dir, self.agent, self.counters, None if self.cfg.offline else self.buffer
        )

    def run(self, progress: bool = True) -> Path:
        mode = "offline" if self.cfg.offline else "online"
        try:
            run_epochs(
                self,
                Cadence(self.cfg.total_steps, self.cfg.eval_every),
                self.steps,
                f"QRL {mode} {self.cfg.env}",
                progress,
                f"metra qrl --resume {self.run_dir}",
            )
        finally:
            if self.envs is not None:
                self.envs.close()
        plot_success(self.run_dir, self.step_name)
        return self.run_dir


def plot_success(run_dir: Path, step_name: str) -> Path:
    """success.png: evaluation success rate against training steps."""
    success = logged(run_dir, "success", step_name)
    x, y = np.array(list(success)), np.array(list(success.values()))
    label = "gradient steps" if step_name == "grad_steps" else "env steps"
    return line_plot(
        run_dir / "success.png", [Curve("QRL", x, y)], label, "success rate", run_dir.name
    )


def train_qrl(
    env: str,
    data: str | Path | None = None,
    steps: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
) -> Path:
    """Train QRL on goal env `env`, offline from dataset `data` or online without it, into
    `out` (default runs/qrl-ENV-MODE-seedS). A folder that holds a checkpoint is resumed
    with its own config (`steps` may raise the total). Returns the run folder."""
    mode = "offline" if data is not None else "online"
    run = RunDir(out if out is not None else Path("runs") / f"qrl-{env}-{mode}-seed{seed}")
    with run.claim(resumable=True) as resuming:
        if resuming:
            saved = GoalRunConfig.from_dict(run.read_config())
            counter = "updates" if saved.train.offline else "env_steps"
            config = resume_to(run, resume_overrides(saved, list(overrides)), steps, "qrl", counter)
        else:
            config = GoalRunConfig.default(env, None if data is None else str(data))
            config = apply_overrides(config, list(overrides))
            config = config.with_train(seed=seed)
            if steps is not None:
                config = config.with_train(total_steps=steps)
        dataset = None
        if config.train.data is not None:
            dataset = load_dataset(Path(config.train.data), goal_env_spec(config.train.env))
        return GoalTrainer(config, run.path, dataset).run(progress)
