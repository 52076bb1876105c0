"""Shared fixtures: tiny configs that train in seconds on a CPU; compiled programs freed
after each test module."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import jax
import pytest

from metra.api import resolve_config
from metra.presets import RunConfig

# Compiled programs persist on disk (METRA_JAX_CACHE, default .pytest_cache/jax; empty: off), so
# that the modules after a clear below, and every later run, load them instead of compiling.
_CACHE = os.environ.get("METRA_JAX_CACHE", str(Path(__file__).parents[1] / ".pytest_cache/jax"))
if _CACHE:
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs() -> Iterator[None]:
    """Each compiled XLA:CPU program keeps memory mappings; one process running the whole
    suite compiled enough of them to crash XLA in its last modules (segfaults in compilation,
    2026-12-02), so every module's programs are released when it ends."""
    yield
    jax.clear_caches()
    gc.collect()


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
