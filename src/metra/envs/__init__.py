"""Environment registry: `make_env(name, seed, num_envs)` gives a `BatchEnv`.

Each entry names a module and the `EnvSpec` in it; the module's `make(spec, num_envs, seed)`
builds the batch. Modules load lazily, so `point` never imports MuJoCo.
"""

from __future__ import annotations

import importlib

from metra.envs.base import BatchEnv, EnvSpec, StepResult

__all__ = ["ENV_NAMES", "BatchEnv", "EnvSpec", "StepResult", "env_spec", "make_env"]

_REGISTRY: dict[str, tuple[str, str]] = {
    "point": ("metra.envs.point", "SPEC"),
    "point_current": ("metra.envs.point", "CURRENT_SPEC"),
    "ant": ("metra.envs.locomotion", "ANT"),
    "half_cheetah": ("metra.envs.locomotion", "HALF_CHEETAH"),
    "quadruped_pixel": ("metra.envs.pixels", "QUADRUPED"),
    "humanoid_pixel": ("metra.envs.pixels", "HUMANOID"),
    "kitchen_pixel": ("metra.envs.kitchen", "KITCHEN"),
}
ENV_NAMES = tuple(_REGISTRY)


def _entry(name: str) -> tuple[object, EnvSpec]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown env {name!r}; known envs: {', '.join(ENV_NAMES)}")
    module_name, spec_name = _REGISTRY[name]
    module = importlib.import_module(module_name)
    return module, getattr(module, spec_name)


def env_spec(name: str) -> EnvSpec:
    """The spec of env `name` without building it."""
    return _entry(name)[1]


def make_env(name: str, seed: int = 0, num_envs: int = 1) -> BatchEnv:
    """Build `num_envs` copies of env `name`; `reset()` without a seed uses `seed`."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    module, spec = _entry(name)
    return module.make(spec, num_envs, seed)  # type: ignore[attr-defined]
