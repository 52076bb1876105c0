"""MP4 of a few skills side by side."""

from __future__ import annotations

import warnings
from contextlib import closing
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np

from metra.envs import make_env
from metra.rollout import agent_policy, rollout


def skill_video(agent: Any, env_name: str, latents: np.ndarray, path: Path, fps: int = 30) -> Path:
    """Deterministic rollouts of `latents`, one tile per skill, written to `path` (.mp4)."""
    inner = agent_policy(agent, latents, deterministic=True)
    frames: list[np.ndarray] = []
    with closing(make_env(env_name, 0, len(latents))) as env:

        def policy(obs: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
            frames.append(np.concatenate([env.render(i) for i in range(env.num_envs)], axis=1))
            return inner(obs, t)

        rollout(env, policy, seed=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # imageio-ffmpeg forks an encoder process; JAX's fork warning does not apply to it.
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
    return path
