"""Agent registries: algorithm name -> (config class, agent class).

A new skill-discovery or meta-RL algorithm is one file in this package plus one line here.
Entries name their module and load on first use, so listing the names (the CLI's `--help`,
argument checks) imports neither jax nor flax.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any


class LazyRegistry(Mapping[str, tuple[type, type]]):
    """name -> (config class, agent class), each pair imported from its module when read."""

    def __init__(self, entries: dict[str, tuple[str, str, str]]) -> None:
        self._entries = entries  # name: (module, config class name, agent class name)

    def __getitem__(self, name: str) -> tuple[type, type]:
        module_name, config_name, agent_name = self._entries[name]
        module = importlib.import_module(module_name)
        return getattr(module, config_name), getattr(module, agent_name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


SKILL_AGENTS = LazyRegistry(
    {
        "metra": ("metra.agents.metra", "MetraConfig", "MetraAgent"),
        "qmetra": ("metra.agents.metra", "QuasimetricMetraConfig", "QuasimetricMetraAgent"),
        "lsd": ("metra.agents.lsd", "LSDConfig", "LSDAgent"),
        "diayn": ("metra.agents.diayn", "DIAYNConfig", "DIAYNAgent"),
        "dads": ("metra.agents.dads", "DADSConfig", "DADSAgent"),
        "cic": ("metra.agents.cic", "CICConfig", "CICAgent"),
    }
)

META_AGENTS = LazyRegistry(
    {
        "pearl": ("metra.agents.pearl", "PearlConfig", "PearlAgent"),
        "cocoa": ("metra.agents.cocoa", "CocoaConfig", "CocoaAgent"),
    }
)

_EXPORTS = {
    "MetraAgent": ("metra.agents.metra", "MetraAgent"),
    "MetraConfig": ("metra.agents.metra", "MetraConfig"),
    "SACAgent": ("metra.agents.sac", "SACAgent"),
    "SACConfig": ("metra.agents.sac", "SACConfig"),
}
__all__ = ["META_AGENTS", "SKILL_AGENTS", "LazyRegistry", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'metra.agents' has no attribute {name!r}")
    module_name, attr = _EXPORTS[name]
    return getattr(importlib.import_module(module_name), attr)
