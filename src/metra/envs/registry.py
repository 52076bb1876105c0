"""The one registry mechanism every env kind uses (skill envs, goal envs, meta-RL task
families, downstream tasks): a name maps to "module:attribute", imported on first use, so
naming an env never imports a simulator it does not need."""

from __future__ import annotations

import importlib
from typing import Any


class Registry:
    """Names of one kind of env and where each is defined."""

    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def check(self, name: str) -> None:
        """One error naming the known entries for an unknown name."""
        if name not in self._entries:
            known = ", ".join(self._entries)
            raise ValueError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}")

    def module(self, name: str) -> Any:
        """The module that defines `name`."""
        self.check(name)
        return importlib.import_module(self._entries[name].partition(":")[0])

    def load(self, name: str) -> Any:
        """The attribute registered for `name` (a spec, class or factory)."""
        return getattr(self.module(name), self._entries[name].partition(":")[2])
