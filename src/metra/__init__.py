"""metra: agents that learn their own latent space and act on it (METRA and friends), in JAX."""

from metra.api import train
from metra.eval.run import evaluate, load

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "load", "train"]
