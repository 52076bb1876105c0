"""The config every workflow writes as config.json: a `train` section (the schedule, env and
seed) and an `agent` section (the algorithm's dataclass), plus any top-level fields a
workflow adds. One base reads every workflow's back, filling the fields an older run saved
before they existed with the values it trained with."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="SectionedConfig")


def build_config(cls: type, values: dict[str, Any]) -> Any:
    """A dataclass from JSON values, turning lists back into tuples (JSON has no tuples and
    no config field holds a list)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
    )


class SectionedConfig:
    """Base of a workflow's frozen run-config dataclass with fields `train` and `agent`."""

    TRAIN: ClassVar[type]  # the train section's dataclass
    AGENT: ClassVar[type | None] = None  # the agent section's, when it does not depend on train
    # Values a run saved before a field existed trained with (read-compatibility).
    TRAIN_BEFORE: ClassVar[dict[str, Any]] = {}
    AGENT_BEFORE: ClassVar[dict[str, Any]] = {}
    # Train fields renamed since: old name -> new name.
    TRAIN_RENAMED: ClassVar[dict[str, str]] = {}

    train: Any
    agent: Any

    @classmethod
    def agent_class(cls, train: Any) -> type:
        """The agent section's dataclass for a train section (e.g. by its `algo`)."""
        if cls.AGENT is None:
            raise NotImplementedError(f"{cls.__name__} names no AGENT and no agent_class")
        return cls.AGENT

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]

    def with_train(self: C, **changes: Any) -> C:
        """A copy with some train fields replaced (validated as the train dataclass is)."""
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes))  # type: ignore[type-var]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        saved = {cls.TRAIN_RENAMED.get(k, k): v for k, v in data["train"].items()}
        train = build_config(cls.TRAIN, {**cls.TRAIN_BEFORE, **saved})
        agent = build_config(cls.agent_class(train), {**cls.AGENT_BEFORE, **data["agent"]})
        rest = {
            f.name: data[f.name]
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.name not in ("train", "agent") and f.name in data
        }
        return cls(train=train, agent=agent, **rest)  # type: ignore[call-arg]
