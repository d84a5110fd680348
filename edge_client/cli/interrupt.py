"""Ctrl-C during an answer stops the answer (the loop sees the event between tokens), not
the program; the partial answer and its accounting are kept."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def cancel_on_interrupt(cancel: threading.Event) -> Iterator[None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        cancel.set()

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
