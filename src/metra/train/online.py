"""The online skill-discovery loop: rollout a batch of skills, store, K jitted updates, log.

Per epoch: `num_envs` trajectories of one episode, each with one fixed skill from the prior,
stepped as one batch; then `grad_steps` gradient steps of `batch_size` in one compiled call.
Every random draw is derived from (seed, epoch), so a resumed run continues exactly where an
uninterrupted one would be.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import numpy as np

from metra.envs import BatchEnv, EnvSpec, env_spec, make_env
from metra.errors import RunFolderError
from metra.eval.plots import plot_coverage_curve, plot_skills
from metra.eval.skills import (
    coverage_coords,
    evaluation_count,
    evaluation_draw,
    skill_metrics,
    skill_trajectories,
)
from metra.presets import RunConfig, algo_classes
from metra.replay import FrameReplay, ReplayBuffer
from metra.rollout import (
    Trajectories,
    agent_policy,
    mean_displacement,
    random_policy,
    rollout,
    visited_bins,
)
from metra.run.checkpoint import (
    Counters,
    has_checkpoint,
    load_arrays,
    load_checkpoint,
    save_checkpoint,
)
from metra.run.folder import RunDir
from metra.run.logs import RunLogger, import_wandb
from metra.run.loop import Cadence, epoch_seed, finite_metrics, run_epochs


def create_agent(config: RunConfig, spec: EnvSpec) -> Any:
    """A fresh agent of the run's algorithm (also the template checkpoints restore into)."""
    agent_cls = algo_classes(config.train.algo)[1]
    obs = spec.obs_dim if spec.frame_shape is None else spec.obs_shape
    return agent_cls.create(config.agent, obs, spec.act_dim, config.train.seed)


def read_config(run_dir: Path) -> RunConfig:
    """The skill run's config from its config.json."""
    data = RunDir(run_dir).read_config()
    try:
        return RunConfig.from_dict(data)
    except (KeyError, TypeError) as err:
        raise RunFolderError(
            f"{Path(run_dir) / 'config.json'} is not a skill run's config (no field {err}): "
            "is it a meta-train run (metra meta-test reads it) or a downstream run (its "
            "evaluations are in progress.csv)?"
        ) from None


def skill_replay(
    spec: EnvSpec, capacity: int, latent_dim: int, kind: type[ReplayBuffer] = ReplayBuffer
) -> ReplayBuffer:
    """Flat float transitions for states, in a buffer of `kind` (`DeviceReplay` for rows on
    the device); single uint8 frames per episode for pixels."""
    f32 = np.dtype(np.float32)
    fields = {
        "action": ((spec.act_dim,), f32),
        "latent": ((latent_dim,), f32),
        "reward": ((), f32),
        "mask": ((), f32),
    }
    if spec.frame_shape is not None:
        return FrameReplay(capacity, spec.episode_len, spec.frame_shape, spec.frame_stack, fields)
    obs = ((spec.obs_dim,), f32)
    return kind(capacity, {"obs": obs, "next_obs": obs, **fields})


def store(replay: ReplayBuffer, trajectories: Trajectories, bootstrap_time_limit: bool) -> None:
    """Add one batch of episodes to a `skill_replay`."""
    if isinstance(replay, FrameReplay):
        channels = replay.data["frames"].shape[-1]
        replay.add(trajectories.episodes(bootstrap_time_limit, channels))
    else:
        replay.add(trajectories.transitions(bootstrap_time_limit))


def obs_statistics(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of states [n, obs_dim] (std at least 1e-3)."""
    return obs.mean(0), np.maximum(obs.std(0), 1e-3)


def random_rollout_statistics(
    env: BatchEnv, episodes: int, length: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The official METRA normalizer rule: state mean and std over `episodes` uniformly
    random episodes of `length` steps (all their states, the first included), stepped as
    batches of `env`."""
    states = []
    for start in range(0, episodes, env.num_envs):
        episode_seed = seed + start
        policy = random_policy(env.spec.act_dim, episode_seed)
        obs = rollout(env, policy, episode_seed, steps=length).obs
        states.append(obs[:, : episodes - start].reshape(-1, env.spec.obs_dim))
    return obs_statistics(np.concatenate(states))


class SkillTrainer:
    """Owns the env, replay, agent and logs of one run folder."""

    def __init__(self, config: RunConfig, run_dir: Path, resume: bool, progress: bool = True):
        self.config, self.cfg = config, config.train
        self.run_dir = Path(run_dir)
        self.progress = progress
        if self.cfg.logger == "wandb":
            import_wandb()  # a missing wandb fails here, before any work
        self.spec = env_spec(self.cfg.env)
        self.env = make_env(self.cfg.env, self.cfg.seed, self.cfg.num_envs)
        self.replay = self._new_replay()
        self.agent = create_agent(config, self.spec)
        self.counters = Counters()
        k = len(self.spec.coord_names)
        self.visited = np.zeros((0, k), np.int64)  # bins of every state visited in training
        if resume and has_checkpoint(self.run_dir):
            self.agent, self.counters = load_checkpoint(self.run_dir, self.agent, self.replay)
            self.visited = load_arrays(self.run_dir).get("visited_bins", self.visited)
        elif self.cfg.normalizer == "random_rollouts" and not self.agent.pixels:
            mean, std = random_rollout_statistics(
                self.env,
                self.cfg.normalizer_episodes,
                self.cfg.normalizer_episode_len,
                epoch_seed(self.cfg.seed, 1 << 30),
            )
            self.agent = self.agent.replace(obs_mean=mean, obs_std=std)
        RunDir(self.run_dir).write_config(config.to_dict(), resumed=resume)
        self.logger = RunLogger(
            self.run_dir,
            self.counters.env_steps if resume else None,
            wandb=self.cfg.logger == "wandb",
        )
        self._base_key = jax.random.PRNGKey(self.cfg.seed)
        # The env is the collector thread's alone; the replay and agent are written here only.
        self._collector = ThreadPoolExecutor(1) if self.cfg.collect == "overlapped" else None

    def _new_replay(self) -> ReplayBuffer:
        return skill_replay(self.spec, self.cfg.replay_size, self.config.agent.latent_dim)

    # ---- one epoch ------------------------------------------------------------------

    @property
    def steps_per_epoch(self) -> int:
        return self.cfg.num_envs * self.spec.episode_len

    def _rollout(self, epoch: int, agent: Any) -> Trajectories:
        """The skill trajectories of `epoch` under `agent`: everything they depend on is
        given, so the collector thread can roll them out while the learner updates."""
        k_latent, k_act = jax.random.split(jax.random.fold_in(self._base_key, epoch))
        latents = np.asarray(agent.sample_latents(k_latent, self.cfg.num_envs))
        seed = epoch_seed(self.cfg.seed, epoch)
        warmup = epoch * self.steps_per_epoch < self.cfg.min_replay
        if warmup and self.cfg.warmup_actions == "uniform":
            policy = random_policy(self.spec.act_dim, seed, latents)
        else:
            policy = agent_policy(agent, latents, deterministic=False, key=k_act)
        return rollout(self.env, policy, seed)

    def _absorb(self, trajectories: Trajectories) -> dict[str, float]:
        """Store one epoch's trajectories and count them (`_counted`)."""
        store(self.replay, trajectories, self.cfg.bootstrap_time_limit)
        return self._counted(coverage_coords(trajectories, self.spec))

    def _counted(self, coords: np.ndarray) -> dict[str, float]:
        """Count one stored epoch of trajectories with coverage coordinates [T + 1, n, k]:
        env steps, the warm-up normalizer, and the bins visited; returns their mean
        displacement."""
        before = self.counters.env_steps
        self.counters.env_steps += self.steps_per_epoch
        warm = before < self.cfg.min_replay <= self.counters.env_steps
        if warm and self.cfg.normalizer == "warmup" and not self.agent.pixels:
            self._fix_normalizer()
        self.visited = np.unique(np.concatenate([self.visited, visited_bins(coords)]), axis=0)
        return {"train_displacement": mean_displacement(coords)}

    def _fix_normalizer(self) -> None:
        """Freeze state mean/std measured on the random-action warm-up transitions (frames
        are not normalized)."""
        obs = self.replay.data["obs"][: len(self.replay)]
        mean, std = obs_statistics(obs)
        self.agent = self.agent.replace(obs_mean=mean, obs_std=std)

    def _update(self) -> dict[str, float]:
        rng = np.random.default_rng([self.cfg.seed, self.counters.epoch, 1])
        batches = self.replay.sample(rng, self.cfg.grad_steps, self.cfg.batch_size)
        self.agent, metrics = self.agent.update(batches)
        self.counters.updates += self.cfg.grad_steps
        return finite_metrics(metrics, f"env step {self.counters.env_steps}")

    def train_epoch(self) -> dict[str, float]:
        """Collect one batch of skill trajectories and run one jitted block of updates (once
        the replay is warm); returns the collection statistics and the update metrics.

        Serial (official): epoch e's trajectories, then update block e on them. Overlapped:
        the collector thread rolls out epoch e + 1 under the agent from before block e while
        block e runs, so the policy lags one block; the first call collects epoch 0 first."""
        epoch = self.counters.epoch
        if self._collector is None or self.counters.env_steps <= epoch * self.steps_per_epoch:
            metrics = self._absorb(self._rollout(epoch, self.agent))
        else:
            metrics = {}
        ahead = None
        if self._collector is not None:
            ahead = self._collector.submit(self._rollout, epoch + 1, self.agent)
        if len(self.replay) >= self.cfg.min_replay:
            metrics.update(self._update())
        if ahead is not None:
            metrics.update(self._absorb(ahead.result()))
        self.counters.epoch += 1
        return metrics

    # ---- evaluation during training -------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Coverage (and kitchen subtasks) of deterministic skills; writes the skill plots."""
        draw = evaluation_draw(self.cfg.eval_fresh_skills, self.counters.env_steps)
        trajectories = skill_trajectories(self.agent, self.cfg.env, self.cfg.eval_skills, draw=draw)
        plots = plot_skills(trajectories, self.agent, self.spec, self.run_dir / "plots")
        self.logger.log_images(self.counters.env_steps, plots)
        return skill_metrics(trajectories, self.spec)

    # ---- the loop -------------------------------------------------------------------
    def save(self) -> None:
        arrays = {"visited_bins": self.visited}
        save_checkpoint(self.run_dir, self.agent, self.counters, self.replay, arrays)

    def run(self) -> Path:
        cfg = self.cfg
        if self.progress:
            print(f"run folder: {self.run_dir} (resume: metra train --resume {self.run_dir})")
        try:
            run_epochs(
                self,
                Cadence(cfg.total_steps, cfg.eval_every, cfg.log_every, cfg.checkpoint_every),
                lambda c: c.env_steps,
                f"{cfg.algo} {cfg.env}",
                self.progress,
                f"metra train --resume {self.run_dir}",
                row_extras=lambda: {"train_coverage": len(self.visited)},
                at_end=self._coverage_curve,
            )
        finally:
            if self._collector is not None:
                self._collector.shutdown()
        return self.run_dir

    def _coverage_curve(self) -> None:
        """plots/coverage.png beside a random policy's coverage, also sent to W&B."""
        agent_cfg = self.config.agent
        episodes = evaluation_count(agent_cfg.discrete, agent_cfg.latent_dim, self.cfg.eval_skills)
        curve = plot_coverage_curve(self.run_dir, self.cfg.env, episodes)
        self.logger.log_images(self.counters.env_steps, [curve] if curve else [])
