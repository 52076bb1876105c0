"""`metra sac`: plain SAC on a Gymnasium MuJoCo task reward, on the same core as every agent.

The cleanest measure of the backbone's speed and correctness against the field's standard
libraries (Stable-Baselines3, SBX): one env, one gradient step of `batch_size` per env step
after `learning_starts` uniformly random steps, as their `SAC` runs with `train_freq=1`.

Per env step, two compiled calls: one stores the transition in a replay that lives on the
device (donated, so written in place), one samples a batch there, takes the SAC step and picks
the next action with the updated actor; nothing crosses to the host but the transition in and
the action out. An epoch is one episode; each episode's reset seed, warm-up actions and keys
are drawn from (seed, episode) or (seed, step), so a resumed run continues exactly:
checkpoints fall on episode ends, and a run ends with the episode that reaches `total_steps`.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from metra.agents.sac import SACAgent, SACConfig
from metra.envs.base import EVAL_SEED
from metra.envs.gym_tasks import SAC_ENVS, episode_return, make_task_env
from metra.presets import (
    apply_overrides,
    check_logger,
    require_counts,
    resume_overrides,
)
from metra.run.checkpoint import (
    Counters,
    has_checkpoint,
    load_arrays,
    load_checkpoint,
    resume_to,
    save_checkpoint,
)
from metra.run.config import SectionedConfig
from metra.run.folder import EVAL_FILE, RunDir, write_json
from metra.run.logs import SAC_METRICS, RunLogger, import_wandb
from metra.run.loop import Cadence, epoch_seed, finite_metrics, run_epochs

REPLAY_FIELDS = ("obs", "action", "reward", "next_obs", "mask")


@dataclass(frozen=True)
class SACTrainConfig:
    """The schedule of SB3/SBX's SAC with `train_freq=1, gradient_steps=1` and the RL Zoo's
    MuJoCo `learning_starts`."""

    env: str = "half_cheetah"
    seed: int = 0
    total_steps: int = 1_000_000  # env steps
    batch_size: int = 256
    learning_starts: int = 10_000  # uniformly random env steps before the first update
    replay_size: int = 1_000_000  # transitions kept
    eval_every: int = 10_000  # env steps between evaluations (and checkpoints)
    eval_episodes: int = 10  # deterministic episodes per evaluation
    logger: str = "csv"  # "wandb" also logs to Weights & Biases (pip install "metra[wandb]")

    def __post_init__(self) -> None:
        if self.env not in SAC_ENVS:
            raise ValueError(f"unknown SAC env {self.env!r}; known: {', '.join(SAC_ENVS)}")
        require_counts(
            self, "total_steps", "batch_size", "replay_size", "eval_every", "eval_episodes"
        )
        if self.learning_starts < self.batch_size:
            raise ValueError(
                f"learning_starts ({self.learning_starts}) must hold at least one batch "
                f"({self.batch_size})"
            )
        check_logger(self.logger)


@dataclass(frozen=True)
class SACRunConfig(SectionedConfig):
    """Everything that defines a `metra sac` run; written as config.json in the run folder."""

    TRAIN: ClassVar[type] = SACTrainConfig
    AGENT: ClassVar[type | None] = SACConfig
    TRAIN_RENAMED: ClassVar[dict[str, str]] = {"steps": "total_steps"}  # one budget name

    train: SACTrainConfig
    agent: SACConfig = field(default_factory=SACConfig)


def device_replay(capacity: int, obs_dim: int, act_dim: int) -> dict[str, jax.Array]:
    """Transitions as device arrays, with the write position and fill level."""
    shapes = {
        "obs": (obs_dim,),
        "action": (act_dim,),
        "reward": (),
        "next_obs": (obs_dim,),
        "mask": (),
    }
    replay = {k: jnp.zeros((capacity, *s), jnp.float32) for k, s in shapes.items()}
    return {**replay, "ptr": jnp.zeros((), jnp.int32), "size": jnp.zeros((), jnp.int32)}


def pack(obs: Any, action: Any, reward: float, next_obs: Any, mask: float) -> np.ndarray:
    """One transition as one float32 vector: a single host-to-device copy per step."""
    parts = [np.ravel(obs), np.ravel(action), [reward], np.ravel(next_obs), [mask]]
    return np.concatenate(parts).astype(np.float32)


def unpack(replay: dict[str, jax.Array], flat: jax.Array) -> dict[str, jax.Array]:
    """The fields of a `pack`ed transition, shaped as the replay's rows."""
    obs_dim, act_dim = replay["obs"].shape[1], replay["action"].shape[1]
    cuts = np.cumsum([obs_dim, act_dim, 1, obs_dim])
    obs, action, reward, next_obs, mask = jnp.split(flat, cuts)
    return {
        "obs": obs,
        "action": action,
        "reward": reward[0],
        "next_obs": next_obs,
        "mask": mask[0],
    }


def _insert(replay: dict[str, jax.Array], flat: jax.Array) -> dict[str, Any]:
    capacity = replay["obs"].shape[0]
    ptr = replay["ptr"]
    transition = unpack(replay, flat)
    out = {k: replay[k].at[ptr].set(transition[k]) for k in REPLAY_FIELDS}
    out["ptr"] = (ptr + 1) % capacity
    out["size"] = jnp.minimum(replay["size"] + 1, capacity)
    return out


@partial(jax.jit, donate_argnums=0)
def store(replay: dict[str, jax.Array], flat: jax.Array) -> dict[str, Any]:
    """Store one `pack`ed transition in place."""
    return _insert(replay, flat)


@partial(jax.jit, static_argnames="batch_size", donate_argnums=(0, 2))
def learn_step(
    agent: SACAgent,
    replay: dict[str, jax.Array],
    totals: dict[str, jax.Array],
    next_obs: jax.Array,
    key: jax.Array,
    batch_size: int,
) -> tuple[SACAgent, dict[str, jax.Array], jax.Array]:
    """One SAC step on a batch sampled on the device, its metrics added to `totals`, and the
    next action (a sample of the updated actor at `next_obs`). The replay is only read: in
    the same call as `store`'s write, XLA copies the whole buffer."""
    k_batch, k_act = jax.random.split(key)
    index = jax.random.randint(k_batch, (batch_size,), 0, replay["size"])
    agent, metrics = agent.update_step({k: replay[k][index] for k in REPLAY_FIELDS})
    totals = {k: totals[k] + metrics[k] for k in totals}
    action = agent.core.sample_action(next_obs[None], k_act, False)[0]
    return agent, totals, action


def mean_return(env: Any, agent: SACAgent, episodes: int) -> float:
    """The agent's deterministic return on the evaluation seeds."""

    def act(obs: np.ndarray) -> np.ndarray:
        return np.asarray(agent.act(obs[None].astype(np.float32), deterministic=True)[0])

    return episode_return(env, act, episodes)


def random_return(env: Any, episodes: int) -> float:
    """Uniformly random actions' return on the evaluation seeds: the floor."""
    rng = np.random.default_rng(EVAL_SEED)
    act_dim = env.action_space.shape[0]
    return episode_return(env, lambda obs: rng.uniform(-1.0, 1.0, act_dim), episodes)


def is_sac_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a `metra sac` run."""
    run = RunDir(run_dir)
    return run.config_path.exists() and "learning_starts" in run.read_config().get("train", {})


def create_sac_agent(config: SACRunConfig, env: Any) -> SACAgent:
    """A fresh agent of the run's config for `env` (also the template checkpoints restore
    into)."""
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    return SACAgent.create(config.agent, obs_dim, act_dim, config.train.seed)


def load_sac_run(run_dir: Path) -> tuple[SACRunConfig, SACAgent, Counters]:
    """The config, trained agent and counters of a `metra sac` run folder."""
    config = SACRunConfig.from_dict(RunDir(run_dir).read_config())
    with closing(make_task_env(config.train.env)) as env:
        template = create_sac_agent(config, env)
    return (config, *load_checkpoint(Path(run_dir), template))


def evaluate_sac_run(run_dir: Path, episodes: int | None = None) -> dict[str, Any]:
    """The last checkpoint's return over `episodes` (default: the run's) evaluation
    episodes beside a random policy's; writes RUN_DIR/eval.json."""
    config = SACRunConfig.from_dict(RunDir(run_dir).read_config())
    episodes = episodes or config.train.eval_episodes
    with closing(make_task_env(config.train.env)) as env:
        agent, counters = load_checkpoint(Path(run_dir), create_sac_agent(config, env))
        result = {
            "env": config.train.env,
            "env_steps": counters.env_steps,
            "episodes": episodes,
            "eval_return": mean_return(env, agent, episodes),
            "random_return": random_return(env, episodes),
        }
    write_json(Path(run_dir) / EVAL_FILE, result)
    return result


class SACTrainer:
    """Owns the env, the device replay, the agent and the logs of one `metra sac` run."""

    def __init__(self, config: SACRunConfig, run_dir: Path, resume: bool) -> None:
        self.config, self.cfg = config, config.train
        self.run_dir = Path(run_dir)
        if self.cfg.logger == "wandb":
            import_wandb()  # a missing wandb fails here, before any work
        self.env = make_task_env(self.cfg.env)
        self.obs_dim = self.env.observation_space.shape[0]
        self.act_dim = self.env.action_space.shape[0]
        self.agent = create_sac_agent(config, self.env)
        self.replay = device_replay(self.cfg.replay_size, self.obs_dim, self.act_dim)
        self.counters = Counters()
        if resume and has_checkpoint(self.run_dir):
            self.agent, self.counters = load_checkpoint(self.run_dir, self.agent)
            saved = load_arrays(self.run_dir)
            size = len(saved["obs"])
            self.replay = {
                **{k: self.replay[k].at[:size].set(saved[k]) for k in REPLAY_FIELDS},
                "ptr": jnp.asarray(int(saved["ptr"]), jnp.int32),
                "size": jnp.asarray(size, jnp.int32),
            }
        # learn_step donates the agent: give every leaf its own buffer (fresh target critics
        # share the critics' arrays)
        self.agent = jax.tree.map(jnp.copy, self.agent)
        RunDir(self.run_dir).write_config(config.to_dict(), resumed=resume)
        self.logger = RunLogger(
            self.run_dir,
            self.counters.env_steps if resume else None,
            wandb=self.cfg.logger == "wandb",
        )
        self._random_return: float | None = None
        # keys of each step's learn_step and of each episode's first action under the actor
        self._step_key, self._first_key = jax.random.split(jax.random.PRNGKey(self.cfg.seed + 1))

    def train_epoch(self) -> dict[str, float]:
        """One episode: warm-up steps store only; later ones store, learn and act."""
        cfg, c = self.cfg, self.counters
        seed = epoch_seed(cfg.seed, c.epoch)
        rng = np.random.default_rng(seed)
        obs, _ = self.env.reset(seed=seed)
        totals = {k: jnp.zeros(()) for k in SAC_METRICS}
        updates, ret, done, action = 0, 0.0, False, None
        while not done:
            if c.env_steps < cfg.learning_starts:
                action = rng.uniform(-1.0, 1.0, self.act_dim).astype(np.float32)
            elif action is None:  # the episode's first action under the actor
                key = jax.random.fold_in(self._first_key, c.epoch)
                action = self.agent.act(obs[None].astype(np.float32), key=key)[0]
            next_obs, reward, terminated, truncated, _ = self.env.step(np.asarray(action))
            ret += float(reward)
            done = terminated or truncated
            # a time limit is not a terminal state: bootstrap through it
            flat = pack(obs, action, float(reward), next_obs, 0.0 if terminated else 1.0)
            c.env_steps += 1
            self.replay = store(self.replay, flat)
            if c.env_steps <= cfg.learning_starts:
                action = None
            else:
                key = jax.random.fold_in(self._step_key, c.env_steps)
                self.agent, totals, action = learn_step(
                    self.agent, self.replay, totals, next_obs, key, cfg.batch_size
                )
                updates += 1
            obs = next_obs
        c.epoch += 1
        c.updates += updates
        row = {"episode_return": ret}
        if updates:
            means = {k: v / updates for k, v in totals.items()}
            row.update(finite_metrics(means, f"env step {c.env_steps}"))
        return row

    def evaluate(self) -> dict[str, float]:
        """Deterministic episodes on fixed evaluation seeds, beside a uniformly random
        policy's return on the same seeds (the floor)."""
        if self._random_return is None:
            self._random_return = random_return(self.env, self.cfg.eval_episodes)
        return {
            "eval_return": mean_return(self.env, self.agent, self.cfg.eval_episodes),
            "random_return": self._random_return,
        }

    def save(self) -> None:
        size = int(self.replay["size"])
        arrays = {k: np.asarray(self.replay[k][:size]) for k in REPLAY_FIELDS}
        arrays["ptr"] = np.asarray(self.replay["ptr"])
        save_checkpoint(self.run_dir, self.agent, self.counters, None, arrays)

    def run(self, progress: bool = True) -> Path:
        try:
            run_epochs(
                self,
                Cadence(self.cfg.total_steps, self.cfg.eval_every),
                lambda c: c.env_steps,
                f"SAC {SAC_ENVS[self.cfg.env]}",
                progress,
                f"metra sac --resume {self.run_dir}",
            )
        finally:
            self.env.close()
        return self.run_dir


def train_sac(
    env: str = "half_cheetah",
    steps: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
) -> Path:
    """Train SAC on `env`'s Gymnasium task into `out` (default runs/sac-ENV-seedS); a folder
    that holds a checkpoint resumes with its own config (`steps` may raise the total)."""
    run = RunDir(out if out is not None else Path("runs") / f"sac-{env}-seed{seed}")
    with run.claim(resumable=True) as resuming:
        if resuming:
            saved = SACRunConfig.from_dict(run.read_config())
            config = resume_to(run, resume_overrides(saved, list(overrides)), steps, "sac")
        else:
            config = SACRunConfig(SACTrainConfig(env=env, seed=seed))
            config = apply_overrides(config, list(overrides))
            if steps is not None:
                config = config.with_train(total_steps=steps)
        return SACTrainer(config, run.path, resuming).run(progress)
