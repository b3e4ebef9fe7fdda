"""Several transactions' bodies committed as one: the writes left behind (outcomes of reads already answered) that
are still waiting when the next write comes, then that write itself.

Each body runs inside its own savepoint, so one that fails is undone alone and the others still commit; the caller
of the last body gets its result or its exception as if it had run alone. One commit instead of several: under
concurrent calls most outcomes join the next call's admission (each commit is a WAL append of every page it
touched), and the outcome of a read is never later than it was.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from argobox.server.store.tx import Body, Tx

T = TypeVar("T")

logger = logging.getLogger("argobox")

Prepared = tuple[Body[Any], str]
"""A write left behind, ready to run: its body, and what it records (for the log, should it fail)."""


@dataclass(slots=True)
class Batched(Generic[T]):
    """What the last body of a batch gave: its result, or the exception it raised (its part was undone)."""

    result: T | None = None
    error: Exception | None = None
    failed: list[str] = field(default_factory=list[str])
    """The writes left behind that failed (each undone alone; logged)."""

    def unwrap(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # the body's own result, None included


def batched(behind: Sequence[Prepared], last: Body[T] | None = None) -> Body[Batched[T]]:
    """One body running `behind` in order, then `last`, each in its own savepoint when there are several (one alone
    runs as its own transaction would: a savepoint costs two more statements)."""
    alone = len(behind) + (last is not None) == 1  # one part: its failure is the transaction's, no savepoint

    def body(tx: Tx) -> Batched[T]:
        done: Batched[T] = Batched()
        if alone and last is not None:
            done.result = last(tx)
            return done
        for part, what in behind:
            if alone:
                part(tx)  # raises: rolled back whole, retried then logged by the caller
                return done
            error = _in_savepoint(tx, part, done)
            if error is not None:
                logger.error("could not record %s: %s", what, error)
                done.failed.append(what)
        if last is not None:
            done.error = _in_savepoint(tx, last, done, keep=True)
        return done

    return body


def _in_savepoint(tx: Tx, part: Body[Any], done: Batched[Any], *, keep: bool = False) -> Exception | None:
    """Run `part` in a savepoint: the exception it raised (its changes undone), or None. With `keep`, its result is
    `done`'s. An error that leaves the transaction unusable (the savepoint cannot be rolled back) ends the batch."""
    tx.db.execute("SAVEPOINT part")
    try:
        result = part(tx)
    except Exception as exc:  # noqa: BLE001 - one part's failure is its own: logged, or raised to its caller
        tx.db.execute("ROLLBACK TO part")
        tx.db.execute("RELEASE part")
        tx.rolled_back()
        return exc
    tx.db.execute("RELEASE part")
    if keep:
        done.result = result
    return None
