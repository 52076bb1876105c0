"""The project's own error types: the CLI prints each as one line (its message names the fix)
and exits with its code, never with a traceback."""

from __future__ import annotations

import signal


class MetraError(Exception):
    """A bad input or a damaged file, with a message that names the fix."""

    exit_code = 2


class RunFolderError(MetraError, ValueError):
    """`--out`/`--resume` names something that cannot be written or resumed as asked."""


class RunBusyError(RunFolderError):
    """Another live process holds the run folder's lock."""


class DamagedFileError(MetraError, ValueError):
    """A checkpoint or dataset file is truncated, altered or from another run."""


class NonFiniteError(MetraError, FloatingPointError):
    """A loss or metric became NaN or inf."""


class RunInterrupted(MetraError):
    """SIGINT or SIGTERM stopped a run after its epoch; the checkpoint is written."""

    def __init__(self, signum: int, run_dir: object, step: int, resume_hint: str) -> None:
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} at step {step} of {run_dir}; the checkpoint is written: "
            f"continue with {resume_hint}"
        )
        self.signum = signum
        self.exit_code = 128 + signum
