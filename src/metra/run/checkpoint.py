"""Checkpoints: agent (params, optimizer states, RNG, normalizer), replay and counters.

`state.json` is written last and atomically, and names the agent and replay files it goes
with, so a crash while saving leaves the previous checkpoint intact. It holds the SHA-256 of
each of them (and of itself), checked on load: a truncated, altered or foreign file is
refused by name instead of loading wrong numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import flax.serialization
import numpy as np

from metra.errors import DamagedFileError, RunFolderError
from metra.replay import ReplayBuffer, TaskReplay
from metra.run.config import C
from metra.run.folder import CHECKPOINTS, RunDir, dumps

REPAIR = "restore the run folder from a copy, or start a new run with another --out"


@dataclass
class Counters:
    env_steps: int = 0
    epoch: int = 0
    updates: int = 0
    elapsed_s: float = 0.0  # wall-clock seconds of training, summed over resumes


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


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
    _write_state(ckpt, state)
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
    _write_state(ckpt, {**state, "weights_only": True})


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in blocks (replays reach gigabytes)."""
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _state_digest(state: dict[str, Any]) -> str:
    body = {k: v for k, v in state.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _write_state(ckpt: Path, state: dict[str, Any]) -> None:
    """state.json with the digest of every file it names and of its own content."""
    names = [state[k] for k in ("agent", "replay", "arrays") if state.get(k)]
    state = {**state, "sha256": {name: file_digest(ckpt / name) for name in names}}
    state["digest"] = _state_digest(state)
    tmp_state = ckpt / "state.json.tmp"
    tmp_state.write_text(dumps(state, indent=1))
    tmp_state.replace(ckpt / "state.json")


def read_state(run_dir: Path) -> dict[str, Any]:
    """The last checkpoint's state.json, checked against its own digest."""
    path = checkpoint_dir(run_dir) / "state.json"
    try:
        state = json.loads(path.read_bytes())
        counters = Counters(**state["counters"])
        ok = isinstance(state["agent"], str) and isinstance(counters.env_steps, int)
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok or ("digest" in state and state["digest"] != _state_digest(state)):
        raise DamagedFileError(f"{path} is damaged: {REPAIR}")
    return state  # type: ignore[no-any-return]


def verified(run_dir: Path, state: dict[str, Any], name: str) -> Path:
    """The path of checkpoint file `name`, after checking it is the one `state` wrote
    (checkpoints from before digests are taken as they are)."""
    path = checkpoint_dir(run_dir) / name
    if not path.is_file():
        raise DamagedFileError(f"{path} is missing: {REPAIR}")
    expected = state.get("sha256", {}).get(name)
    if expected is not None and file_digest(path) != expected:
        raise DamagedFileError(f"{path} is damaged or from another checkpoint: {REPAIR}")
    return path


def has_checkpoint(run_dir: Path) -> bool:
    return (checkpoint_dir(run_dir) / "state.json").exists()


def saved_env_steps(run_dir: Path) -> int:
    """Env steps of a run folder's last checkpoint (0 when it has none)."""
    if not has_checkpoint(run_dir):
        return 0
    return int(read_state(run_dir)["counters"]["env_steps"])


def load_checkpoint(
    run_dir: Path, template: Any, replay: ReplayBuffer | TaskReplay | None = None
) -> tuple[Any, Counters]:
    """Restore into `template` (a freshly created agent of the same config)."""
    ckpt = checkpoint_dir(run_dir)
    if not has_checkpoint(run_dir):
        raise FileNotFoundError(
            f"no checkpoint in {ckpt}: train first (metra train ...) or check the run folder"
        )
    state = read_state(run_dir)
    if replay is not None and state.get("weights_only"):
        raise ValueError(
            f"{run_dir} holds a shipped agent's weights only (no optimizer state or replay): "
            "metra eval, plot and downstream read it; train a new run to continue training"
        )
    data = verified(run_dir, state, state["agent"]).read_bytes()
    try:
        if state.get("weights_only"):
            saved = flax.serialization.msgpack_restore(data)
            full = _merged(flax.serialization.to_state_dict(template), saved)
            agent = flax.serialization.from_state_dict(template, full)
        else:
            agent = flax.serialization.from_bytes(template, data)
    except Exception as err:  # json, msgpack and flax raise many kinds on a damaged file
        raise DamagedFileError(
            f"{ckpt / state['agent']} is unreadable or does not match the run's config "
            f"({type(err).__name__}): {REPAIR}"
        ) from None
    if replay is not None and state["replay"] is not None:
        path = verified(run_dir, state, state["replay"])
        try:
            replay.load(path)
        except Exception as err:  # zipfile, numpy and key errors on a damaged replay
            raise DamagedFileError(
                f"{path} is unreadable ({type(err).__name__}): {REPAIR}"
            ) from None
    return agent, Counters(**state["counters"])


def load_arrays(run_dir: Path) -> dict[str, np.ndarray]:
    """The arrays saved with the last checkpoint (empty when it has none)."""
    state = read_state(run_dir)
    if not state.get("arrays"):
        return {}
    path = verified(run_dir, state, state["arrays"])
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except Exception as err:  # zipfile and numpy errors on a damaged file
        raise DamagedFileError(f"{path} is unreadable ({type(err).__name__}): {REPAIR}") from None


def resume_to(
    run: RunDir, config: C, steps: int | None, command: str, counter: str = "env_steps"
) -> C:
    """The one resume rule of every training command: a resumed run's `config` (its own, with
    the overrides `presets.resume_overrides` allows) trains on to `steps` (default: its own
    total), which must lie above the `counter` its last checkpoint holds (what `total_steps`
    counts: env steps, or an offline run's updates). `command` is the one the hint names."""
    saved = int(read_state(run.path)["counters"][counter]) if has_checkpoint(run.path) else 0
    if steps is not None and steps < saved:
        raise RunFolderError(
            f"--steps {steps} is below the {saved} steps {run} has trained: pick more than {saved}"
        )
    target = config.train.total_steps if steps is None else steps
    if saved >= target:
        raise RunFolderError(
            f"{run} is finished ({saved} of {target} steps): to train on, metra {command} "
            f"--resume {run} --steps N with N > {saved}"
        )
    return config.with_train(total_steps=target)
