"""Shared fixtures: tiny configs that train in seconds on a CPU."""

from __future__ import annotations

import pytest

from metra.api import resolve_config
from metra.presets import RunConfig

TINY = [
    "total_steps=3200",
    "min_replay=800",
    "grad_steps=4",
    "batch_size=64",
    "replay_size=5000",
    "eval_every=1600",
    "checkpoint_every=1600",
    "log_every=800",
    "eval_skills=8",
    "hidden=32,32",
]


@pytest.fixture
def tiny_config() -> RunConfig:
    """The point preset shrunk to four epochs of 800 env steps."""
    return resolve_config("point", overrides=TINY)
