"""metra: agents that learn their own latent space and act on it (METRA and friends), in JAX."""

import os

# Headless MuJoCo rendering through EGL (Mesa's software rasterizer needs no GPU). MuJoCo reads
# this once, when first imported, so it is set before any submodule imports it.
os.environ.setdefault("MUJOCO_GL", "egl")

from metra.api import train
from metra.eval.run import evaluate, export, load

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "export", "load", "train"]
