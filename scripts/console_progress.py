"""Progress of a long job on the console: one updating line on a terminal, a few lines in a log.

``scene.import_network`` reports progress many times a second, mostly with the same message
(every bundling iteration); printed as lines, that is dozens of near-repeats. On a terminal
(stderr is a TTY) this redraws one line with ``\\r``; otherwise (a log file, CI) it prints a line
only when the text changed and at least ``log_interval_s`` passed since the last one, plus the
final update, so a short import prints two lines and a long one a line a second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class ConsoleProgress:
    """A ``progress(fraction, message)`` callback that writes to ``stream`` (default stderr)."""

    def __init__(self, stream: TextIO | None = None, *, live_interval_s: float = 0.05,
                 log_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self.interval = live_interval_s if self.live else log_interval_s
        self.clock = clock
        self.shown: str | None = None      # the text last written
        self.shown_at: float | None = None
        self.width = 0                     # of the longest live line, to blank it out

    def __call__(self, fraction: float, message: str) -> None:
        text = f"{min(max(fraction, 0.0), 1.0):4.0%} {message}"
        if text == self.shown:
            return
        now = self.clock()
        finished = fraction >= 1.0
        if not finished and self.shown_at is not None and now - self.shown_at < self.interval:
            return
        if self.live:
            self.stream.write("\r" + text.ljust(self.width))
            self.width = max(self.width, len(text))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown, self.shown_at = text, now

    def close(self) -> None:
        """End the live line (the next output starts on a line of its own)."""
        if self.live and self.shown is not None:
            self.stream.write("\n")
            self.stream.flush()
        self.shown, self.shown_at, self.width = None, None, 0
