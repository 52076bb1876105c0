"""Shared fixtures: tiny configs that train in seconds on a CPU; XLA's compilation cache."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

from metra.api import resolve_config
from metra.presets import RunConfig

JAX_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation"


def pytest_configure(config: pytest.Config) -> None:
    """Most of a test's time is XLA compiling small agents, and the same programs again for
    every fresh agent (each holds new optimizer closures, so jit's in-memory cache misses).
    XLA's persistent cache serves those from disk, within one run and across runs (measured:
    a QRL agent's create + first update 17 s cold, 3 s warm). METRA_TEST_JAX_CACHE=0 turns it
    off."""
    if os.environ.get("METRA_TEST_JAX_CACHE", "1") == "0":
        return
    jax.config.update("jax_compilation_cache_dir", str(JAX_CACHE))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


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
