"""Environment registry: `make_env(name, seed, num_envs)` gives a `BatchEnv`.

Each entry names a module and the `EnvSpec` in it (`Registry`); the module's
`make(spec, num_envs, seed)` builds the batch. Modules load lazily, so `point` never imports
MuJoCo.
"""

from __future__ import annotations

from metra.envs.base import BatchEnv, EnvSpec, StepResult
from metra.envs.registry import Registry

__all__ = ["ENV_NAMES", "BatchEnv", "EnvSpec", "StepResult", "env_spec", "make_env"]

SKILL_ENVS = Registry(
    "env",
    {
        "point": "metra.envs.point:SPEC",
        "point_current": "metra.envs.point:CURRENT_SPEC",
        "ant": "metra.envs.locomotion:ANT",
        "half_cheetah": "metra.envs.locomotion:HALF_CHEETAH",
        "quadruped_pixel": "metra.envs.pixels:QUADRUPED",
        "humanoid_pixel": "metra.envs.pixels:HUMANOID",
        "kitchen_pixel": "metra.envs.kitchen:KITCHEN",
    },
)
ENV_NAMES = SKILL_ENVS.names


def env_spec(name: str) -> EnvSpec:
    """The spec of env `name` without building it."""
    return SKILL_ENVS.load(name)  # type: ignore[no-any-return]


def make_env(name: str, seed: int = 0, num_envs: int = 1) -> BatchEnv:
    """Build `num_envs` copies of env `name`; `reset()` without a seed uses `seed`."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    spec = env_spec(name)
    return SKILL_ENVS.module(name).make(spec, num_envs, seed)  # type: ignore[no-any-return]
