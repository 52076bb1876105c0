"""Meta-World ML1 (Yu et al., 2019) task families, run in a separate Python environment.

Meta-World 3.1.1 pins mujoco 3.3.0 and fails at reset on the project's mujoco 3.17 (which
dm_control 1.0.50 needs), and it calls `np.in1d`, gone in numpy 2.4. So it lives in its own
venv (`bash scripts/install-metaworld.sh`, default `<repo>/.venv-metaworld`) and each batch of
envs is a worker process (`metaworld_worker.py`, run by that venv's python) spoken to over
pipes with length-prefixed pickles. Nothing here imports metaworld or its MuJoCo.

ML1 is one manipulation skill with 50 train and 50 test goals (object and goal positions),
drawn by `metaworld.ML1(env_name, seed)`: train from `seed`, test from `seed + 1`. The goal is
hidden from the agent (zeros in the last 3 of the 39 observation entries), which is what
makes it a meta-RL problem. Episodes last Meta-World's `max_path_length` (500 steps); envs
never terminate, they only run out of time, and `success` is the env's `info["success"]` at
that step (the trainer takes the max over an episode).
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import subprocess
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from metra.envs.base import StepResult, no_coords
from metra.envs.meta import Task, meta_step
from metra.envs.metaworld_worker import read_frame, write_frame

ML1_ENVS: dict[str, str] = {
    "ml1_reach": "reach-v3",
    "ml1_push": "push-v3",
    "ml1_pick_place": "pick-place-v3",
}
PYTHON_ENV_VAR = "METRA_METAWORLD_PYTHON"
VENV_DIR = ".venv-metaworld"
WORKER_SCRIPT = Path(__file__).with_name("metaworld_worker.py")
_STDERR_LINES = 40  # how much of a dead worker's stderr an error message carries
_PICKLE_PROTOCOL = 5


class MetaWorldError(RuntimeError):
    """A request failed inside the Meta-World worker, or the worker process died."""


def find_python() -> Path:
    """The Meta-World venv's python: `$METRA_METAWORLD_PYTHON`, else `.venv-metaworld/bin/python`
    in the nearest directory above this file (a source checkout, editable install) or above
    the working directory (a regular install run from the checkout)."""
    override = os.environ.get(PYTHON_ENV_VAR)
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"{PYTHON_ENV_VAR}={override} is not an executable file")
        return path
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for directory in (start, *start.parents):
            # Not resolved: a venv's bin/python is a symlink to the base interpreter, and
            # only the link's own location makes Python pick up the venv.
            candidate = directory / VENV_DIR / "bin" / "python"
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"Meta-World's Python environment was not found (no {VENV_DIR}/bin/python above "
        f"{Path(__file__).resolve().parent} or the working directory). Create it with "
        f"`bash scripts/install-metaworld.sh` from the repository root, or point "
        f"{PYTHON_ENV_VAR} at the python of a venv that has metaworld 3.1.1 installed."
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a worker: EOF on its stdin asks it to exit; kill it if it does not."""
    if proc.poll() is None:
        try:
            assert proc.stdin is not None
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None and not stream.closed:
            with contextlib.suppress(OSError):
                stream.close()


def _drain(stream: IO[bytes], tail: collections.deque[str]) -> None:
    """Keep the last lines of the worker's stderr (reading it also keeps the pipe from filling)."""
    for line in iter(stream.readline, b""):
        tail.append(line.decode(errors="replace").rstrip())
    stream.close()


class Worker:
    """One worker process and its request/reply channel. Stopped by `close`, when garbage
    collected, or at interpreter exit, whichever comes first."""

    def __init__(self, python: str | Path, script: str | Path = WORKER_SCRIPT) -> None:
        self.python = str(python)
        # -I: ignore PYTHONPATH and friends from our environment and leave the script's
        # directory (where this module's `metaworld.py` would shadow the package) off sys.path.
        self._proc = subprocess.Popen(
            [self.python, "-I", str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Its own session, so Ctrl-C in the terminal reaches only us; it ends when its
            # stdin closes (our `close`, or our death).
            start_new_session=True,
        )
        self._tail: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        assert self._proc.stderr is not None
        self._drainer = threading.Thread(
            target=_drain, args=(self._proc.stderr, self._tail), daemon=True
        )
        self._drainer.start()
        self._finalizer = weakref.finalize(self, _stop, self._proc)

    @property
    def alive(self) -> bool:
        return self._finalizer.alive and self._proc.poll() is None

    def call(self, command: str, **kwargs: Any) -> Any:
        """Send one request and wait for its reply; errors come back as `MetaWorldError`."""
        if not self._finalizer.alive:
            raise MetaWorldError(f"Meta-World worker is closed (request {command!r})")
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            write_frame(self._proc.stdin, pickle.dumps((command, kwargs), _PICKLE_PROTOCOL))
            frame = read_frame(self._proc.stdout)
        except (OSError, EOFError):
            frame = None
        except BaseException:
            # Interrupted between request and reply (Ctrl-C): the reply would answer the next
            # request, so this worker can no longer be trusted.
            self._finalizer()
            raise
        if frame is None:
            raise self._death(command)
        status, result = pickle.loads(frame)
        if status == "error":
            raise MetaWorldError(f"Meta-World worker failed on {command!r}:\n{result}")
        return result

    def _death(self, command: str) -> MetaWorldError:
        try:
            code: int | None = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self._drainer.join(timeout=2)
        self._finalizer()
        stderr = "\n".join(self._tail) or "(empty)"
        return MetaWorldError(
            f"Meta-World worker ({self.python}) died during {command!r} "
            f"(exit code {code}); the end of its stderr:\n{stderr}"
        )

    def close(self) -> None:
        """Ask the worker to exit and wait for it."""
        if self.alive:
            with contextlib.suppress(MetaWorldError):
                self.call("close")
        self._finalizer()


class MetaWorldEnvBatch:
    """A batch of ML1 envs, env i solving task i, in one worker process (`MetaEnvBatch`)."""

    def __init__(self, worker: Worker, num_envs: int, release: Callable[[Worker], None]) -> None:
        self.num_envs = num_envs
        self._worker: Worker | None = worker
        self._release = release

    def _call(self, command: str, **kwargs: Any) -> Any:
        if self._worker is None:
            raise MetaWorldError(f"{command} on a closed Meta-World env batch")
        return self._worker.call(command, **kwargs)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """New episodes (env i seeded with seed + i); obs [n, obs_dim] float32 and no coords.
        ML1 resets are fixed by the task (object and goal positions), so the seed changes
        nothing visible."""
        obs = np.asarray(self._call("reset", seed=int(seed)), dtype=np.float32)
        return obs, no_coords(self.num_envs)

    def step(self, actions: np.ndarray) -> StepResult:
        """Actions [n, act_dim] in [-1, 1]. Stepping past `episode_len` without a reset raises
        `MetaWorldError` (Meta-World refuses it)."""
        return meta_step(*self._call("step", actions=np.asarray(actions, dtype=np.float32)))

    def debug_target_pos(self) -> np.ndarray:
        """Each env's goal position [n, 3] (Meta-World's `env._target_pos`). For tests and
        diagnostics only: ML1 hides the goal from the agent, and a trainer must not read it."""
        return np.asarray(self._call("target_pos"), dtype=np.float64)

    def close(self) -> None:
        """Give the worker back to the family for the next batch (or stop it if it died)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            self._release(worker)

    def __enter__(self) -> MetaWorldEnvBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MetaWorldTasks:
    """An ML1 family (`MetaTasks`): the benchmark's 50 train and 50 test tasks for `seed`.

    A task is `{"env", "split", "index", "rand_vec"}`: where it sits in the benchmark's lists,
    plus Meta-World's task parameters (object and goal positions) for logs and plots only.
    Workers of closed batches are kept and reused, which saves starting Python and
    rebuilding the benchmark (~2 s) for every batch.
    """

    has_success = True

    def __init__(self, name: str, seed: int = 0, python: str | Path | None = None) -> None:
        if name not in ML1_ENVS:
            raise ValueError(f"unknown Meta-World family {name!r}; known: {', '.join(ML1_ENVS)}")
        self.name = name
        self.env_name = ML1_ENVS[name]
        self.seed = int(seed)
        self.python = Path(python) if python is not None else find_python()
        self._idle: list[Worker] = []
        worker, info = self._start()
        self._idle.append(worker)
        self.obs_dim: int = info["obs_dim"]
        self.act_dim: int = info["act_dim"]
        self.episode_len: int = info["episode_len"]
        self.train_tasks: list[Task] = self._tasks("train", info["train"])
        self.test_tasks: list[Task] = self._tasks("test", info["test"])

    def _tasks(self, split: str, params: list[list[float]]) -> list[Task]:
        return [
            {"env": self.env_name, "split": split, "index": i, "rand_vec": tuple(p)}
            for i, p in enumerate(params)
        ]

    def _start(self) -> tuple[Worker, dict[str, Any]]:
        worker = Worker(self.python)
        try:
            return worker, worker.call("make", env_name=self.env_name, seed=self.seed)
        except BaseException:
            worker.close()
            raise

    def _release(self, worker: Worker) -> None:
        if worker.alive:
            self._idle.append(worker)
        else:
            worker.close()

    def make_envs(self, tasks: Sequence[Task]) -> MetaWorldEnvBatch:
        """One env per task; tasks must come from this family's `train_tasks`/`test_tasks`."""
        if not tasks:
            raise ValueError("make_envs needs at least one task")
        keys = []
        for task in tasks:
            split, index = task.get("split"), task.get("index")
            count = {"train": len(self.train_tasks), "test": len(self.test_tasks)}.get(str(split))
            if not (
                task.get("env") == self.env_name
                and isinstance(index, int)
                and count is not None
                and 0 <= index < count
            ):
                raise ValueError(f"{task!r} is not a task of {self.name}")
            keys.append((split, index))
        worker = self._idle.pop() if self._idle else self._start()[0]
        try:
            worker.call("set_tasks", tasks=keys)
        except BaseException:
            worker.close()
            raise
        return MetaWorldEnvBatch(worker, len(keys), self._release)

    def close(self) -> None:
        """Stop the idle workers now (they are also stopped when collected or at exit)."""
        while self._idle:
            self._idle.pop().close()


def make(name: str, seed: int = 0) -> MetaWorldTasks:
    """The registry's entry point (`metra.envs.meta.make_meta_tasks`)."""
    return MetaWorldTasks(name, seed)
