"""Logging that a flood cannot turn into a flood of log lines.

`CoalescedLog` is for ArgoBox's own refusals: the first of each kind in a window is one line, the rest are counted
into the next. `QuietRepeats` is a filter for the libraries' loggers (asyncio, uvicorn) that repeat one message per
event: out of file descriptors, asyncio logs a traceback for every failed accept, many per second.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger("argobox")

LOG_WINDOW_SECONDS = 10.0
NOISY_LOGGERS = ("asyncio", "uvicorn.error")


@dataclass(slots=True)
class CoalescedLog:
    """Per kind, the first event of each window is logged at once, in one line; the rest of the window are counted
    into the next line (or into `flush`)."""

    window: float = LOG_WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    _opened: dict[str, float] = field(default_factory=dict[str, float])
    _counted: Counter[str] = field(default_factory=Counter[str])

    def note(self, kind: str, text: str) -> None:
        now = self.clock()
        opened = self._opened.get(kind)
        if opened is not None and now - opened < self.window:
            self._counted[kind] += 1
            return
        self._opened[kind] = now
        earlier = self._counted.pop(kind, 0)
        logger.warning("%s%s", text, f" (and {earlier} more like it before)" if earlier else "")

    def flush(self) -> None:
        for kind, count in sorted(self._counted.items()):
            logger.warning("%d more like it: %s", count, kind)
        self._counted.clear()


class QuietRepeats(logging.Filter):
    """Lets the first record with a given first line through in each window, without its traceback when one like
    it was shown before, and counts the others into the next one let through."""

    def __init__(self, window: float = LOG_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._window = window
        self._clock = clock
        self._opened: dict[str, float] = {}
        self._counted: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        key = f"{record.name}:{str(record.msg).partition(chr(10))[0]}"
        now = self._clock()
        opened = self._opened.get(key)
        if opened is not None and now - opened < self._window:
            self._counted[key] += 1
            return False
        earlier = self._counted.pop(key, 0)
        lines = [record.getMessage()]
        if opened is not None and record.exc_info:  # its traceback was shown once: the error's line is enough
            error = record.exc_info[1]
            record.exc_info, record.exc_text = None, None
            lines.append(f"{type(error).__name__}: {error}")
        if earlier:
            lines.append(f"(and {earlier} more like it before)")
        record.msg, record.args = "\n".join(lines), None
        self._opened[key] = now
        return True


def quiet_library_logs() -> QuietRepeats:
    """Install `QuietRepeats` on the loggers that repeat themselves under load (once per process)."""
    for name in NOISY_LOGGERS:
        for existing in logging.getLogger(name).filters:
            if isinstance(existing, QuietRepeats):
                return existing
    quiet = QuietRepeats()
    for name in NOISY_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
    return quiet
