"""Ctrl-C and SIGTERM during training: finish the step, save, stop; a second Ctrl-C stops at once.

The first SIGINT or SIGTERM is acknowledged immediately (one clean line) and sets a flag the training
loop checks after every step; the loop then saves a checkpoint and returns, saying which signal stopped it. A
second signal raises ``KeyboardInterrupt`` right away, without saving (the previous checkpoint stays intact:
saves are atomic).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


class GracefulStop:
    """``with GracefulStop(say) as stop: ... if stop.requested: save and leave``."""

    def __init__(self, say: Callable[[str], None] | None = None, enabled: bool = True):
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        self.enabled = enabled
        self.signals: list[int] = []
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return bool(self.signals)

    @property
    def name(self) -> str | None:
        """The first signal's name (SIGINT, SIGTERM), or None when none came."""
        return signal.Signals(self.signals[0]).name if self.signals else None

    def _handle(self, signum: int, frame) -> None:
        self.signals.append(signum)
        if len(self.signals) > 1:
            raise KeyboardInterrupt  # the second signal: stop now, without saving
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.say(f"{name}: stopping after this step and saving (Ctrl-C again to stop now without saving)")

    def __enter__(self) -> GracefulStop:
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._previous[sig] = signal.signal(sig, self._handle)
                except ValueError:  # not the main thread: signals cannot be caught here
                    break
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
