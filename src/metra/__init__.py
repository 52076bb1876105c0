"""metra: agents that learn their own latent space and act on it (METRA and friends), in JAX.

The entry points load on first use, so `import metra` (and the CLI's `--help`) does not pay
for jax, flax and MuJoCo.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from importlib import metadata
from typing import Any

# Headless MuJoCo rendering through EGL (Mesa's software rasterizer needs no GPU). MuJoCo reads
# this once, when first imported, so it is set before any submodule imports it.
os.environ.setdefault("MUJOCO_GL", "egl")

try:
    __version__ = metadata.version("metra")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

_ENTRY_POINTS = {
    "train": "metra.api",
    "evaluate": "metra.train.runs",
    "export": "metra.train.runs",
    "load": "metra.train.runs",
}
__all__ = ["__version__", *_ENTRY_POINTS]


def __getattr__(name: str) -> Any:
    if name not in _ENTRY_POINTS:
        raise AttributeError(f"module 'metra' has no attribute {name!r}")
    value = getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """`metra.train` is the training function. Importing the subpackage `metra.train` (the
    workflows) would bind its module to that name; the module stays reachable through
    `import metra.train....` and sys.modules, the name keeps the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if not (name in _ENTRY_POINTS and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
