"""The skill epoch on a JAX-native env (`backend=mjx`): rollout, replay insert and updates as
one jitted call, with the replay on the device.

On the MuJoCo backend an epoch steps C simulators from Python and copies every batch of
transitions and updates across the host boundary; here the N envs (MJX, `metra.envs.mjx`),
the skill policy, the replay (`DeviceReplay`) and the K gradient steps all live in one
compiled function, so a GPU runs thousands of envs per step. The schedule is the MuJoCo
trainer's (warm-up, `min_replay`, one fixed skill per trajectory, the time limit handled by
`bootstrap_time_limit`), the normalizer is measured on the MuJoCo env as there, and
evaluation (coverage, plots) runs on the MuJoCo env, so figures of both backends read alike.
Every draw comes from (seed, epoch), so a run repeats exactly on one device and `--resume`
continues it; the draws differ from the MuJoCo backend's, and MJX computes in float32.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metra.agents.base import Metrics
from metra.envs.mjx import MJXEnv, make_mjx_env
from metra.presets import RunConfig
from metra.replay import DeviceReplay, ReplayBuffer
from metra.run.loop import finite_metrics
from metra.train.online import SkillTrainer, skill_replay


@partial(
    jax.jit,
    static_argnames=(
        *("env", "num_envs", "grad_steps", "batch_size"),
        *("bootstrap_time_limit", "uniform", "update"),
    ),
    donate_argnames="data",
)
def device_epoch(
    agent: Any,
    data: dict[str, jax.Array],
    ptr: jax.Array,
    size: jax.Array,
    key: jax.Array,
    *,
    env: MJXEnv,
    num_envs: int,
    grad_steps: int,
    batch_size: int,
    bootstrap_time_limit: bool,
    uniform: bool,
    update: bool,
) -> tuple[Any, dict[str, jax.Array], jax.Array, Metrics]:
    """One epoch: `num_envs` episodes of one skill each under the stochastic policy (uniform
    actions when `uniform`), inserted into the replay rows `data` at `ptr`, then, if
    `update`, `grad_steps` gradient steps on batches drawn from the filled rows. Returns the
    agent, the rows, the coverage coordinates [T + 1, n, k] and the mean update metrics."""
    k_latent, k_reset, k_act, k_update = jax.random.split(key, 4)
    steps = env.spec.episode_len
    latents = agent.sample_latents(k_latent, num_envs)
    start = env.reset(k_reset, num_envs)

    def step(state: Any, k: jax.Array) -> tuple[Any, tuple[jax.Array, ...]]:
        if uniform:
            action = jax.random.uniform(k, (num_envs, env.spec.act_dim), minval=-1.0, maxval=1.0)
        else:
            action = agent.act(state.obs, latents, deterministic=False, key=k)
        after = env.step(state, action)
        return after, (state.obs, action, after.obs, after.reward, env.coords(after))

    _, (obs, action, next_obs, reward, coords) = jax.lax.scan(
        step, start, jax.random.split(k_act, steps)
    )
    # No MJX env terminates, so only the time limit ends an episode.
    mask = jnp.ones((steps, num_envs)).at[-1].set(float(bootstrap_time_limit))
    major = {
        "obs": obs,
        "next_obs": next_obs,
        "action": action,
        "latent": jnp.broadcast_to(latents, (steps, *latents.shape)),
        "reward": reward,
        "mask": mask,
    }
    data = DeviceReplay.insert(
        data, ptr, {k: v.reshape(-1, *v.shape[2:]) for k, v in major.items()}
    )
    metrics: Metrics = {}
    if update:
        filled = jnp.minimum(size + steps * num_envs, len(data["obs"]))
        agent, metrics = agent.scan_updates(
            jax.random.split(k_update, grad_steps),
            lambda k: DeviceReplay.draw(data, filled, k, batch_size),
        )
    coords = jnp.concatenate([env.coords(start)[None], coords])
    return agent, data, coords, metrics


class DeviceSkillTrainer(SkillTrainer):
    """The skill trainer with `train_epoch` as one `device_epoch` call."""

    def __init__(self, config: RunConfig, run_dir: Path, resume: bool, progress: bool = True):
        env = make_mjx_env(config.train.env)  # an env without a twin fails before any work
        super().__init__(config, run_dir, resume, progress)
        cfg = self.cfg
        self._epoch = partial(
            device_epoch,
            env=env,
            num_envs=cfg.num_envs,
            grad_steps=cfg.grad_steps,
            batch_size=cfg.batch_size,
            bootstrap_time_limit=cfg.bootstrap_time_limit,
        )

    def _new_replay(self) -> ReplayBuffer:
        if self.steps_per_epoch > self.cfg.replay_size:
            raise ValueError(
                f"one epoch ({self.steps_per_epoch} transitions) does not fit replay_size="
                f"{self.cfg.replay_size}"
            )
        return skill_replay(
            self.spec, self.cfg.replay_size, self.config.agent.latent_dim, DeviceReplay
        )

    def train_epoch(self) -> dict[str, float]:
        """Collect, store and (once the replay is warm) update, as the MuJoCo trainer's
        serial order, in one compiled call."""
        cfg, epoch, replay = self.cfg, self.counters.epoch, self.replay
        assert isinstance(replay, DeviceReplay)
        warmup = epoch * self.steps_per_epoch < cfg.min_replay
        update = len(replay) + self.steps_per_epoch >= cfg.min_replay
        self.agent, data, coords, metrics = self._epoch(
            self.agent,
            replay.data,
            jnp.asarray(replay.ptr),
            jnp.asarray(replay.size),
            jax.random.fold_in(self._base_key, epoch),
            uniform=warmup and cfg.warmup_actions == "uniform",
            update=update,
        )
        replay.written(data, self.steps_per_epoch)
        row = self._counted(np.asarray(coords))
        if update:
            self.counters.updates += cfg.grad_steps
            row.update(finite_metrics(metrics, f"env step {self.counters.env_steps}"))
        self.counters.epoch += 1
        return row
