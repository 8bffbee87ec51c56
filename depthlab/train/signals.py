"""Preemption: SIGTERM (how clusters stop jobs) and SIGUSR1 (a requeue warning) end a run cleanly.

While `preemption_watch()` is active, either signal only sets a flag; the loop finishes the current
step, writes a checkpoint and raises `Preempted`, and the run exits with `EXIT_PREEMPTED` so a
requeue script can tell preemption (resume with `--resume`) from failure.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(Exception):
    """Training stopped on a signal after saving `checkpoint` at `step`."""

    def __init__(self, signal_name: str, step: int, checkpoint):
        super().__init__(f"stopped by {signal_name} at step {step}; checkpoint {checkpoint}")
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint


class PreemptionFlag:
    """The first preemption signal received, if any."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None

    def __call__(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)

    @property
    def requested(self) -> bool:
        return self.received is not None


@contextlib.contextmanager
def preemption_watch() -> Iterator[PreemptionFlag]:
    """Route SIGTERM and SIGUSR1 to a flag for the duration (main thread only; elsewhere the
    signals keep their handlers and the flag never rises)."""
    flag = PreemptionFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {sig: signal.signal(sig, flag) for sig in PREEMPTION_SIGNALS}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
