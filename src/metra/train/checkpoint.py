"""Checkpoints: agent (params, optimizer states, RNG, normalizer), replay and counters.

`state.json` is written last and atomically, and names the agent and replay files it goes
with, so a crash while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import flax.serialization
import numpy as np

from metra.replay import ReplayBuffer, TaskReplay


@dataclass
class Counters:
    env_steps: int = 0
    epoch: int = 0
    updates: int = 0
    elapsed_s: float = 0.0  # wall-clock seconds of training, summed over resumes


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    run_dir: Path,
    agent: Any,
    counters: Counters,
    replay: ReplayBuffer | TaskReplay | None,
    arrays: dict[str, np.ndarray] | None = None,
) -> None:
    """`arrays`: a trainer's own state beside the agent (read back by `load_arrays`)."""
    ckpt = checkpoint_dir(run_dir)
    ckpt.mkdir(parents=True, exist_ok=True)
    tag = f"{counters.env_steps:012d}"
    agent_file = f"agent-{tag}.msgpack"
    tmp = ckpt / (agent_file + ".tmp")
    tmp.write_bytes(flax.serialization.to_bytes(agent))
    tmp.replace(ckpt / agent_file)
    state: dict[str, Any] = {"counters": asdict(counters), "agent": agent_file, "replay": None}
    if replay is not None:
        state["replay"] = f"replay-{tag}.npz"
        replay.save(ckpt / state["replay"])
    state["arrays"] = None
    if arrays:
        state["arrays"] = f"arrays-{tag}.npz"
        with (ckpt / (state["arrays"] + ".tmp")).open("wb") as f:
            np.savez(f, **arrays)
        (ckpt / (state["arrays"] + ".tmp")).replace(ckpt / state["arrays"])
    tmp_state = ckpt / "state.json.tmp"
    tmp_state.write_text(json.dumps(state, indent=1))
    tmp_state.replace(ckpt / "state.json")
    keep = {agent_file, state["replay"], state["arrays"], "state.json"}
    for old in ckpt.iterdir():
        if old.name not in keep and old.name.startswith(("agent-", "replay-", "arrays-")):
            old.unlink()


# What a shipped agent leaves out: optimizer moments and target critics, which only training
# needs (with the replay, which `save_weights` never writes).
TRAINING_ONLY = ("opt_state", "target_critic")


def _without_training_state(tree: Any) -> Any:
    if not isinstance(tree, dict):
        return tree
    return {k: _without_training_state(v) for k, v in tree.items() if k not in TRAINING_ONLY}


def _merged(base: Any, update: Any) -> Any:
    if not isinstance(update, dict):
        return update
    return {k: _merged(v, update[k]) if k in update else v for k, v in base.items()}


def save_weights(run_dir: Path, agent: Any, counters: Counters) -> None:
    """A weights-only checkpoint (parameters, normalizer, RNG, counters): what a shipped,
    pretrained agent holds. Evaluation and downstream tasks load it; training cannot resume
    it."""
    ckpt = checkpoint_dir(run_dir)
    ckpt.mkdir(parents=True, exist_ok=True)
    agent_file = f"weights-{counters.env_steps:012d}.msgpack"
    tree = _without_training_state(flax.serialization.to_state_dict(agent))
    (ckpt / agent_file).write_bytes(flax.serialization.msgpack_serialize(tree))
    state = {"counters": asdict(counters), "agent": agent_file, "replay": None}
    (ckpt / "state.json").write_text(json.dumps({**state, "weights_only": True}, indent=1))


def has_checkpoint(run_dir: Path) -> bool:
    return (checkpoint_dir(run_dir) / "state.json").exists()


def saved_env_steps(run_dir: Path) -> int:
    """Env steps of a run folder's last checkpoint (0 when it has none)."""
    if not has_checkpoint(run_dir):
        return 0
    state = json.loads((checkpoint_dir(run_dir) / "state.json").read_text())
    return int(state["counters"]["env_steps"])


def load_checkpoint(
    run_dir: Path, template: Any, replay: ReplayBuffer | TaskReplay | None = None
) -> tuple[Any, Counters]:
    """Restore into `template` (a freshly created agent of the same config)."""
    ckpt = checkpoint_dir(run_dir)
    if not has_checkpoint(run_dir):
        raise FileNotFoundError(
            f"no checkpoint in {ckpt}: train first (metra train ...) or check the run folder"
        )
    state = json.loads((ckpt / "state.json").read_text())
    if replay is not None and state.get("weights_only"):
        raise ValueError(
            f"{run_dir} holds a shipped agent's weights only (no optimizer state or replay): "
            "metra eval, plot and downstream read it; train a new run to continue training"
        )
    try:
        data = (ckpt / state["agent"]).read_bytes()
        if state.get("weights_only"):
            saved = flax.serialization.msgpack_restore(data)
            full = _merged(flax.serialization.to_state_dict(template), saved)
            agent = flax.serialization.from_state_dict(template, full)
        else:
            agent = flax.serialization.from_bytes(template, data)
    except Exception as err:  # json, msgpack and flax raise many kinds on a damaged file
        raise ValueError(
            f"the checkpoint in {ckpt} is unreadable or does not match the run's config "
            f"({type(err).__name__}: {err}); retrain, or resume from a copy of the run"
        ) from err
    if replay is not None and state["replay"] is not None:
        replay.load(ckpt / state["replay"])
    return agent, Counters(**state["counters"])


def load_arrays(run_dir: Path) -> dict[str, np.ndarray]:
    """The arrays saved with the last checkpoint (empty when it has none)."""
    state = json.loads((checkpoint_dir(run_dir) / "state.json").read_text())
    if not state.get("arrays"):
        return {}
    with np.load(checkpoint_dir(run_dir) / state["arrays"]) as data:
        return {k: data[k] for k in data.files}
