"""Work that must finish once begun: an execution and its record, a decision and its notification."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

import anyio


@contextmanager
def to_the_end() -> Generator[None]:
    """Shield the block from cancellation from outside (a client gone, a server stopping).

    The same as `anyio.CancelScope(shield=True)`, but typed as never swallowing an exception (the scope is never
    cancelled itself), so a type checker knows that what the block assigns is bound after it.
    """
    with anyio.CancelScope(shield=True):
        yield
