"""Ctrl-C during training: the first asks the loop to stop after the current step, the second quits at once."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator


class StopRequest:
    """Callable flag the training loop polls after every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def __call__(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()


@contextlib.contextmanager
def graceful_sigint(notice: str) -> Iterator[StopRequest]:
    """While inside, SIGINT sets the returned flag (and writes `notice` to stderr); a second raises KeyboardInterrupt."""
    request = StopRequest()

    def handler(signum, frame) -> None:
        if request():
            raise KeyboardInterrupt
        request.set()
        # os.write, not print: a handler can run while the main thread is inside a buffered write to stderr.
        os.write(2, f"\n{notice}\n".encode())

    if threading.current_thread() is not threading.main_thread():
        yield request  # signals reach only the main thread; nothing to install
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)
