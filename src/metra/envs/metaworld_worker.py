"""Meta-World ML1 worker: a batch of envs served over stdin/stdout, run by the Meta-World venv.

Meta-World (Yu et al., 2019) 3.1.1 pins mujoco 3.3.0 and numpy < 2.4, which cannot share a
process with the project's mujoco 3.17 stack, so it lives in its own venv
(`scripts/install-metaworld.sh`) and `metra.envs.metaworld` drives this script as a subprocess.
It must therefore import only the standard library, numpy and metaworld (never `metra`).

Wire format, both ways: an 8-byte little-endian length, then a pickle of that many bytes.
A request is `(command, kwargs)`; the reply is `("ok", result)` or `("error", traceback)`.
The protocol owns the real stdout: fd 1 is pointed at stderr before metaworld is imported, so
stray prints from Python or MuJoCo's C code cannot corrupt a frame. EOF on stdin ends the worker.

Commands:
  make(env_name, seed)   build `metaworld.ML1(env_name, seed=seed)`; returns obs_dim, act_dim,
                         episode_len (the env's max_path_length) and, per split, each task's
                         `rand_vec` (Meta-World's task parameters: object and goal positions).
  set_tasks(tasks)       one env per `(split, index)`; env instances are reused across calls.
  reset(seed)            env i seeded with seed + i; returns obs [n, obs_dim] float32.
  step(actions)          actions [n, act_dim]; returns obs, reward, terminated, success.
  target_pos()           each env's goal (`env._target_pos`) [n, 3]. For tests and diagnostics
                         only: ML1 hides the goal from the agent, and the trainer never asks.
  close()                reply, then exit.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import traceback
from typing import Any, BinaryIO

import numpy as np

_HEADER = struct.Struct("<Q")
_PICKLE_PROTOCOL = 5


def _claim_stdout() -> BinaryIO:
    """Keep a private handle on the real stdout and point fd 1 (and sys.stdout) at stderr."""
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto_out


def _drop_own_dir_from_path() -> None:
    """This file sits next to `metaworld.py` (the client), which would shadow the package."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]


def read_frame(stream: BinaryIO) -> bytes | None:
    """One frame's payload, or None at a clean EOF."""
    header = stream.read(_HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise EOFError("truncated frame header")
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError("truncated frame")
    return payload


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


class Server:
    """The ML1 benchmark of one env name and a batch of envs, one per task."""

    def __init__(self) -> None:
        self.benchmark: Any = None
        self.env_name = ""
        self.envs: list[Any] = []
        self.active: list[Any] = []  # the first len(tasks) of self.envs
        self.terminated: np.ndarray | None = None  # [n] bool, None until the first reset
        self.last_obs = np.zeros((0, 0), dtype=np.float32)

    def make(self, env_name: str, seed: int) -> dict[str, Any]:
        import metaworld  # here, not at the top: main() first clears the shadowing path

        self.benchmark = metaworld.ML1(env_name, seed=seed)
        self.env_name = env_name
        self.envs, self.active = [], []
        env = self._env(0)
        env.set_task(self.benchmark.train_tasks[0])
        obs, _ = env.reset()

        def params(tasks: list[Any]) -> list[list[float]]:
            return [np.asarray(pickle.loads(t.data)["rand_vec"]).tolist() for t in tasks]

        return {
            "obs_dim": int(obs.shape[0]),
            "act_dim": int(env.action_space.shape[0]),
            "episode_len": int(env.max_path_length),
            "train": params(self.benchmark.train_tasks),
            "test": params(self.benchmark.test_tasks),
        }

    def _env(self, i: int) -> Any:
        while len(self.envs) <= i:
            self.envs.append(self.benchmark.train_classes[self.env_name]())
        return self.envs[i]

    def set_tasks(self, tasks: list[tuple[str, int]]) -> None:
        if self.benchmark is None:
            raise RuntimeError("set_tasks before make")
        lists = {"train": self.benchmark.train_tasks, "test": self.benchmark.test_tasks}
        for split, index in tasks:
            if split not in lists or not 0 <= index < len(lists[split]):
                raise ValueError(f"no {split!r} task {index} in ML1 {self.env_name}")
        self.active = []
        for i, (split, index) in enumerate(tasks):
            env = self._env(i)
            env.set_task(lists[split][index])
            self.active.append(env)
        self.terminated = None

    def reset(self, seed: int) -> np.ndarray:
        if not self.active:
            raise RuntimeError("reset before set_tasks")
        obs = []
        for i, env in enumerate(self.active):
            # Meta-World ignores reset's seed; env.seed seeds its own generators.
            env.seed(seed + i)
            obs.append(env.reset(seed=seed + i)[0])
        self.last_obs = np.asarray(obs, dtype=np.float32)
        self.terminated = np.zeros(len(self.active), dtype=bool)
        return self.last_obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.terminated is None:
            raise RuntimeError("step before reset")
        n = len(self.active)
        actions = np.asarray(actions, dtype=np.float64)
        act_dim = self.active[0].action_space.shape[0]
        if actions.shape != (n, act_dim):
            raise ValueError(f"actions of shape {actions.shape}, expected {(n, act_dim)}")
        live = [env for env, done in zip(self.active, self.terminated, strict=True) if not done]
        if any(env.curr_path_length >= env.max_path_length for env in live):
            # Checked before stepping any env, so a refused step leaves the batch unchanged.
            raise ValueError(
                f"episode over after {live[0].max_path_length} steps (Meta-World's "
                "max_path_length); reset before stepping again"
            )
        actions = np.clip(actions, -1.0, 1.0)
        obs = self.last_obs.copy()
        reward = np.zeros(n, dtype=np.float32)
        success = np.zeros(n, dtype=np.float32)
        for i, env in enumerate(self.active):
            if self.terminated[i]:  # Meta-World never terminates; kept for the protocol
                continue
            o, r, term, _trunc, info = env.step(actions[i])
            obs[i] = o
            reward[i] = r
            success[i] = float(info["success"])
            self.terminated[i] = bool(term)
        self.last_obs = obs
        return obs, reward, self.terminated.copy(), success

    def target_pos(self) -> np.ndarray:
        return np.asarray([env._target_pos for env in self.active], dtype=np.float64)


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer requests until `close` or EOF. Errors in a request are replied, not fatal."""
    server = Server()
    commands = {
        "make": server.make,
        "set_tasks": server.set_tasks,
        "reset": server.reset,
        "step": server.step,
        "target_pos": server.target_pos,
        "ping": lambda: "pong",
    }
    while True:
        frame = read_frame(stdin)
        if frame is None:
            return
        command, kwargs = pickle.loads(frame)
        if command == "close":
            write_frame(stdout, pickle.dumps(("ok", None), protocol=_PICKLE_PROTOCOL))
            return
        try:
            if command not in commands:
                raise ValueError(f"unknown command {command!r}")
            reply: tuple[str, Any] = ("ok", commands[command](**kwargs))
        except Exception:
            reply = ("error", traceback.format_exc())
        write_frame(stdout, pickle.dumps(reply, protocol=_PICKLE_PROTOCOL))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the client decides when we stop
    proto_out = _claim_stdout()
    _drop_own_dir_from_path()
    serve(sys.stdin.buffer, proto_out)


if __name__ == "__main__":
    main()
