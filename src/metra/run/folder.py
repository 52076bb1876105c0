"""The run folder: what a run writes, who may write it, and when it may start or resume.

Layout: config.json (the run's config and its provenance), checkpoints/, progress.csv,
tb/ (TensorBoard), plots/, eval.json; `.lock` names the one process writing it.

One rule for every workflow: a new run needs a new, empty or never-checkpointed run folder;
a resume needs a checkpoint and a total above it. The lock is an OS file lock (`flock`), so a
crashed holder releases it with its process and a stale `.lock` file never blocks a resume.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from metra.errors import RunBusyError, RunFolderError

CONFIG_FILE = "config.json"
PROGRESS_FILE = "progress.csv"
EVAL_FILE = "eval.json"
LOCK_FILE = ".lock"
CHECKPOINTS = "checkpoints"
# What a run folder may hold before its first checkpoint, so restarting it loses nothing of
# the user's (every other file means the folder is not a run's).
RUN_ENTRIES = frozenset(
    {CONFIG_FILE, LOCK_FILE, CHECKPOINTS, PROGRESS_FILE, "progress.tmp", "tb", "plots"}
    | {EVAL_FILE, "meta_test.json", "meta_test.csv", "random.json", "success.png"}
    | {"downstream", "wandb", "wandb_id.txt"}
)


def strict(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers and NaN/inf as None, so it is valid JSON."""
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return strict(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, indent: int = 2) -> str:
    """Strict JSON (no NaN or Infinity tokens, which most JSON readers reject)."""
    return json.dumps(strict(value), indent=indent, allow_nan=False)


def write_json(path: Path, value: Any) -> Path:
    """Write strict JSON atomically: a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(value) + "\n")
    tmp.replace(path)
    return path


def _git_commit() -> str | None:
    """The commit of the checkout this package runs from (None for an installed wheel)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance() -> dict[str, Any]:
    """What made a run: versions, commit, device, host and time (recorded in config.json)."""
    import jax  # a trainer has imported it already

    device = jax.devices()[0]
    return {
        "metra": _version("metra"),
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        **{p: _version(p) for p in ("jax", "jaxlib", "flax", "optax", "mujoco", "numpy")},
        "device": f"{device.platform}:{getattr(device, 'device_kind', '')}",
        "host": socket.gethostname(),
        "command": " ".join(sys.argv),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


class RunDir:
    """One run folder: its files, its lock and its start/resume rules."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def has_checkpoint(self) -> bool:
        return (self.checkpoints / "state.json").is_file()

    def _refuse_file(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} is a file: give a folder for the run")

    def check_new(self) -> None:
        """Refuse, before any work, a folder a new run must not write into: a file, a folder
        holding a run (resume it instead) or a non-empty folder of someone else's files."""
        self._refuse_file()
        if not self.path.exists():
            return
        if self.has_checkpoint():
            raise RunFolderError(
                f"{self.path} already holds a run: resume it with --resume {self.path}, "
                "or pick another --out"
            )
        foreign = sorted(p.name for p in self.path.iterdir() if p.name not in RUN_ENTRIES)
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            why = f"it holds {shown}"
        elif self.config_path.exists() and not self._is_metra_config():
            why = f"its {CONFIG_FILE} is not a metra run's"
        else:
            return
        raise RunFolderError(
            f"{self.path} is not empty and not a metra run folder ({why}): pick a new or "
            "empty folder"
        )

    def _is_metra_config(self) -> bool:
        try:
            data = json.loads(self.config_path.read_text())
        except (OSError, ValueError):
            return False
        # New runs record their provenance; older ones have a train section (skills, QRL,
        # meta-RL) or a task (downstream).
        return isinstance(data, dict) and bool({"provenance", "train", "task"} & set(data))

    def check_resume(self) -> None:
        """Refuse a resume of something that is not a checkpointed run."""
        self._refuse_file()
        if not self.path.is_dir():
            raise RunFolderError(f"no run folder at {self.path}")
        if not self.has_checkpoint():
            raise RunFolderError(
                f"{self.path} has no checkpoint to resume from: start it anew with --out"
            )

    def read_config(self) -> dict[str, Any]:
        """The config.json of the run (provenance included)."""
        if not self.config_path.is_file():
            raise FileNotFoundError(
                f"{self.config_path} not found: {self.path} is not a metra run folder"
            )
        try:
            data = json.loads(self.config_path.read_text())
        except ValueError as err:
            raise RunFolderError(
                f"{self.config_path} is not valid JSON ({err}): restore it from a copy of the run"
            ) from None
        return data  # type: ignore[no-any-return]

    def write_config(self, config: dict[str, Any], resumed: bool) -> None:
        """config.json: `config` plus the provenance of the run's start and of each resume."""
        record = provenance()
        data: dict[str, Any] = {**config, "provenance": record}
        if resumed and self.config_path.is_file():
            old = self.read_config()
            if "provenance" in old:
                data["provenance"] = old["provenance"]
                data["resumes"] = [*old.get("resumes", []), record]
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config_path, data)

    @contextmanager
    def claim(self, resumable: bool) -> Iterator[bool]:
        """Hold the folder for a run; yields True when the run resumes the checkpoint there
        (only if `resumable`: commands whose rerun resumes), else False after `check_new`,
        which runs before the lock (so a refused folder gets no .lock) and again under it."""
        if not (resumable and self.has_checkpoint()):
            self.check_new()
        with self.hold():
            resuming = resumable and self.has_checkpoint()
            if not resuming:
                self.check_new()
            yield resuming

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Be the folder's one writer until the block ends; a second writer gets one line
        naming the holder."""
        self._refuse_file()
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
                raise RunBusyError(
                    f"{self.path} is being written by {holder}: wait for it to end or stop it"
                ) from None
            me = f"pid {os.getpid()} on {socket.gethostname()} since "
            me += time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{me} ({' '.join(sys.argv)})\n".encode(), 0)
            try:
                yield
            except BaseException:
                if created and [p.name for p in self.path.iterdir()] == [LOCK_FILE]:
                    # refused before writing anything: leave no folder behind
                    (self.path / LOCK_FILE).unlink()
                    self.path.rmdir()
                raise
            finally:
                if self.path.is_dir():
                    os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
