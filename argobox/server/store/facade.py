"""`Store`: the durable store shared by every ArgoBox process, as the rest of ArgoBox uses it.

Each method is one step of the request queue, the budgets, the audit trail or the outbox, delegated to the module
that does that job; every state change is one transaction holding the change and the audit events that describe
it. After each commit that appended events, the audit checkpoint beside the database is brought up to the head.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio

from argobox.policy.limits import FailureState, Limits, Usage
from argobox.server.audit import Signer
from argobox.server.files import UnsafeFolder, check_folder, ensure_private_file, private_folder
from argobox.server.redact import Redactor
from argobox.server.store import admission, budgets, outbox, phone, requests, trail
from argobox.server.store.budgets import CallFacts, Snapshot, usage
from argobox.server.store.checkpointer import Checkpointer
from argobox.server.store.connection import Connection
from argobox.server.store.executors import Lease
from argobox.server.store.records import (
    Admission,
    AuditRecord,
    Clock,
    Event,
    NewRequest,
    Notification,
    PruneResult,
    Refused,
    RequestRecord,
    RequestStatus,
    StoreError,
    audit_from_row,
    request_from_row,
)
from argobox.server.store.recovery import recover_interrupted
from argobox.server.store.schema import migrate
from argobox.server.store.sealing import Sealer, SealingKeyError, opened
from argobox.server.store.tx import Body

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000


def _prepare_files(path: Path) -> None:
    """Create the database file (mode 0600) and its folder (mode 0700) if missing, and check that folder, and the
    real file's when `path` is a link: SQLite makes its -wal and -shm files beside the real file, the checkpoint's
    files go beside `path`. Raises UnsafeFolder, OSError."""
    private_folder(path.parent)
    ensure_private_file(path)
    real = path.resolve().parent
    if real != path.parent.resolve():
        check_folder(real)


async def _open_files(
    path: Path, redactor: Redactor | None, busy_timeout_ms: int
) -> tuple[Sealer, Lease, aiosqlite.Connection]:
    """The store's files made safe, its sealing key, this process's lease and the database connection; StoreError
    (and nothing left held) when one of them cannot be had."""
    lease: Lease | None = None
    try:
        _prepare_files(path)
        sealer = Sealer.for_store(path, redactor)
        lease = Lease.take(path)  # this process's proof of life, for as long as the store is open
        # Explicit transactions only (see `Connection.transaction`); a lone read is its own snapshot. Used from the
        # event loop too, never at the same time as from its thread (see `Connection`).
        db = await aiosqlite.connect(
            path, isolation_level=None, timeout=busy_timeout_ms / 1000, check_same_thread=False
        )
    except (UnsafeFolder, SealingKeyError, OSError, sqlite3.Error) as exc:
        if lease is not None:
            lease.release()
        raise StoreError(f"cannot open the store {str(path)!r}: {exc}") from None
    return sealer, lease, db


class Store:
    """The queue and the audit trail. Open it with `Store.open(path)`; every method may raise `StoreError`."""

    def __init__(self, connection: Connection, *, path: Path, executor: str) -> None:
        self._connection = connection
        self._path = path
        self._executor = executor
        """What a request this process executes records as its executor (see `executors`)."""
        self._clock = connection.clock
        self._redact = connection.redactor

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: Path,
        *,
        clock: Clock,
        redactor: Redactor | None = None,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        signer: Signer | None = None,
    ) -> AsyncGenerator[Store, None]:
        """Open (creating if needed, mode 0600) and migrate the store; waits at most `busy_timeout_ms` for locks.

        The store's folder must not be writable by every user. The audit checkpoint beside it is kept at the chain
        head (signed with `signer` when given).
        """
        sealer, lease, db = await _open_files(path, redactor, busy_timeout_ms)
        checkpointer = Checkpointer(path, signer=signer, busy_timeout_ms=busy_timeout_ms)
        try:
            db.row_factory = sqlite3.Row
            redactor = redactor or Redactor()
            connection = Connection(
                db,
                clock=clock,
                redactor=redactor,
                sealer=sealer,
                busy_timeout_ms=busy_timeout_ms,
                committed=checkpointer.notify,
            )
            await connection.prepare()
            await migrate(connection)
            # A process killed between a commit and the checkpoint written just after it left the checkpoint
            # behind the head (or none at all, in a new store), and `verify` then fails (no checkpoint; a prune no
            # checkpoint covers) until some later commit: bring it up to the head now, as a commit would.
            checkpointer.notify()
            try:
                yield cls(connection, path=path, executor=lease.executor)
            finally:
                with anyio.CancelScope(shield=True):  # even when cancelled: what was answered gets recorded
                    await connection.catch_up()
        finally:
            try:
                await anyio.to_thread.run_sync(checkpointer.close)
            finally:
                try:
                    await db.close()
                finally:
                    lease.release()

    # Transactions -------------------------------------------------------------------------------------------------

    async def transaction(self, body: Body[T]) -> T:
        """Run `body` as one `BEGIN IMMEDIATE` transaction (see `Connection.transaction`)."""
        return await self._connection.transaction(body)

    def transaction_behind(self, prepare: Callable[[], Body[Any]], *, what: str) -> None:
        """Run a transaction without waiting for it (see `Connection.transaction_behind`)."""
        self._connection.transaction_behind(prepare, what=what)

    def answered(self) -> None:
        """The transport has written an answer: the writes left behind start now (see `transaction_behind`)."""
        self._connection.answered()

    async def audit(
        self,
        events: Sequence[Event],
        *,
        request_id: str | None = None,
        agent: str | None = None,
        tool: str | None = None,
    ) -> None:
        """Append events that belong to no state change (refusals, startup checks)."""
        await self.transaction(lambda tx: tx.append(events, request_id=request_id, agent=agent, tool=tool))

    # Admission and budgets ----------------------------------------------------------------------------------------

    async def admit(
        self,
        facts: CallFacts,
        limits: Limits,
        *,
        tool: str | None,
        events: Sequence[Event],
        request: NewRequest | None = None,
        failed: bool | None = None,
    ) -> Admission:
        """Check a call against the agent's budgets and, when it fits, record it (with `request`, if any) in one
        transaction. A call identical to a pending request returns that request instead of a new one.

        `failed` moves the failure streak (True for a denial at decision time)."""
        body = admission.admitting(
            facts, limits, tool=tool, events=events, request=request, failed=failed, executor=self._executor
        )
        return await self._connection.transaction(body, inline=True)

    async def usage(self, facts: CallFacts, limits: Limits) -> Snapshot:
        """What the budgets of a call like `facts` hold now (read-only: what `admit` would count against)."""
        now = self._clock()
        return await self._connection.read_with(lambda db: usage(db, facts, limits, now))

    async def would_queue(self, facts: CallFacts, limits: Limits) -> bool:
        """Whether `admit` would now queue this call as a new request (read-only; `admit` decides for real)."""
        snapshot = await self.usage(facts, limits)
        return admission.would_queue(snapshot, facts, limits, self._clock())

    async def budget(self, agent: str, limits: Limits) -> tuple[Usage, FailureState]:
        """The agent's current use of its budgets (read-only)."""
        return await self._connection.read_with(admission.budget_reading(agent, limits, self._clock()))

    async def target_use(self, agent: str, limits: Limits) -> dict[str, int]:
        """How many changes each target of `agent` had in the per-target window (read-only)."""
        now = self._clock()
        return await self._connection.read_with(lambda db: budgets.target_use(db, agent, limits, now))

    async def reset_budget(self, agent: str, *, actor: str) -> FailureState:
        """Clear an agent's cooldown, failure streak and refusal streaks, audited."""
        return await self.transaction(admission.resetting(agent, actor=actor))

    # Requests -----------------------------------------------------------------------------------------------------

    async def get(self, request_id: str) -> RequestRecord | None:
        rows = await self._connection.read("SELECT * FROM requests WHERE id = ?", (request_id,))
        return opened(request_from_row(rows[0]), self._connection.sealer) if rows else None

    async def list_requests(
        self,
        *,
        status: RequestStatus | None = None,
        agent: str | None = None,
        limit: int = 100,
        tool: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[RequestRecord]:
        """Requests, newest first; `since` and `until` bound the creation time (`until` exclusive)."""
        sql, params = requests.listing(status=status, agent=agent, limit=limit, tool=tool, since=since, until=until)
        sealer = self._connection.sealer
        return [opened(request_from_row(row), sealer) for row in await self._connection.read(sql, params)]

    async def approve(
        self, request_id: str, *, operator: str, note: str, via: Mapping[str, str] | None = None
    ) -> RequestRecord:
        """pending_approval -> executing, by `operator`, in one transaction: the approval and the start of its
        execution by this process. Refused when missing, decided, or past its expiry. The caller must now execute
        the request and record its outcome (`finish`); if this process dies first, `recover_interrupted` marks it
        `unknown`, never runs it again. `via` (how the decision came, e.g. its channel) joins the audit event."""
        body = requests.approving(
            request_id,
            operator=operator,
            note=note,
            now=self._clock(),
            executor=self._executor,
            redact=self._redact,
            via=via,
        )
        record = await self.transaction(body)
        if record is None:
            raise await self._refusal(request_id, "approve")
        return record

    async def deny(
        self,
        request_id: str,
        *,
        operator: str,
        reason: str,
        limits: Limits | None = None,
        via: Mapping[str, str] | None = None,
    ) -> RequestRecord:
        """pending_approval -> denied, by `operator`; with `limits`, the denial counts toward the failure streak.
        `via` (how the decision came) joins the audit event."""
        body = requests.denying(
            request_id,
            operator=operator,
            reason=reason,
            now=self._clock(),
            limits=limits,
            redact=self._redact,
            via=via,
        )
        record = await self.transaction(body)
        if record is None:
            raise await self._refusal(request_id, "deny")
        return record

    async def _refusal(self, request_id: str, verb: str) -> Refused:
        await self.expire_due()
        return requests.refusal(request_id, await self.get(request_id), verb)

    async def finish(
        self,
        request_id: str,
        *,
        ok: bool,
        result: Any = None,
        error: str | None = None,
        detail: dict[str, Any],
        limits: Limits | None = None,
    ) -> RequestRecord:
        """executing -> succeeded or failed, with the (redacted) result or error, kept whole: the caller may fetch it
        later (an approved request's agent asks for it with argobox_request_status)."""
        sets = requests.outcome_columns(self._redact, ok=ok, result=result, error=error, cap=False)
        record = await self.transaction(requests.finishing(request_id, sets=sets, ok=ok, detail=detail, limits=limits))
        if record is None:
            raise Refused("not_executing", f"request {request_id} is not executing")
        return record

    def finish_behind(
        self,
        record: RequestRecord,
        *,
        ok: bool,
        result: Any = None,
        result_json: str | None = None,
        error: str | None = None,
        detail: dict[str, Any],
        limits: Limits | None = None,
    ) -> RequestRecord:
        """`finish` without waiting for the write (see `transaction_behind`); returns the record as it will be
        (with `result` and `error` as given: the caller has redacted them for its answer; `result_json` is `result`
        as it serialised it, sorted keys, stored as it is). For reads answered at once only: they changed nothing,
        and the caller has the result (so one over MAX_STORED_RESULT_CHARS is not kept). If the process dies first,
        the request is left `executing`, and marked `unknown` when ArgoBox next starts."""
        status = RequestStatus.SUCCEEDED if ok else RequestStatus.FAILED

        def prepare() -> Body[None]:
            redact, text = self._redact, result_json
            sets = requests.outcome_columns(redact, ok=ok, result=result, error=error, cap=True, result_json=text)
            transition = requests.finishing(record.id, sets=sets, ok=ok, detail=detail, limits=limits)
            return lambda tx: requests.log_if_missed(transition(tx), record.id, status)

        self.transaction_behind(prepare, what=f"the outcome of request {record.id}")
        return replace(record, status=status, result=result, error=error, updated_at=self._clock())

    # Sweeps -------------------------------------------------------------------------------------------------------

    async def expire_due(self) -> int:
        """Mark every pending request past its expiry as expired, with an audit event each."""
        return await self.transaction(requests.expiring)

    async def recover_interrupted(self) -> list[str]:
        """Mark executing requests whose executor process is gone as `unknown`; never re-run them."""
        return await recover_interrupted(self._connection, self._path)

    # The audit trail ----------------------------------------------------------------------------------------------

    async def audit_trail(
        self,
        *,
        request_id: str | None = None,
        agent: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        event: str | None = None,
    ) -> list[AuditRecord]:
        """Audit events in sequence order, optionally filtered (`event`: of that name only); with `limit`, the most
        recent `limit` of them."""
        sql, params = trail.trail_query(request_id=request_id, agent=agent, since=since, limit=limit, event=event)
        return [audit_from_row(row) for row in reversed(await self._connection.read(sql, params))]

    async def audit_after(self, seq: int, *, limit: int = 1000) -> list[AuditRecord]:
        """Audit events after `seq`, oldest first (for followers such as `argobox watch`)."""
        return [audit_from_row(row) for row in await self._connection.read(trail.AFTER_QUERY, (seq, limit))]

    async def prune(self, *, before: float, operator: str) -> PruneResult:
        """Remove the oldest events, those up to the last one recorded before `before`, as `operator` (see
        `trail.pruning`); `verify` still passes after it."""
        return await self.transaction(trail.pruning(before=before, operator=operator))

    # The outbox ---------------------------------------------------------------------------------------------------

    async def queue_notifications(self, *, request_id: str, event: str, channels: Sequence[str], payload: str) -> None:
        """Put one notification per channel in the outbox (`payload` is the JSON text every channel is told)."""
        await self.transaction(outbox.queueing(request_id=request_id, event=event, channels=channels, payload=payload))

    async def claim_notifications(self, *, stale_after: float) -> list[Notification]:
        """Claim the notifications due now for delivery; a claim older than `stale_after` seconds is released."""
        return await self.transaction(outbox.claiming(stale_after=stale_after))

    async def settle_notification(
        self, notification: Notification, *, retry_at: float | None, error: str | None, event: Event
    ) -> None:
        """Record how a delivery went, audited with `event`: sent (no `error`), retried at `retry_at`, or given up."""
        await self.transaction(outbox.settling(notification, retry_at=retry_at, error=error, event=event))

    # The phone's buttons ------------------------------------------------------------------------------------------

    async def take_phone_event(self, context_id: str) -> bool:
        """Record that this process handles the Home Assistant event `context_id`; False when a process already
        does (every listening process hears every event)."""
        return await self.transaction(phone.taking_event(context_id))

    async def phone_code_used(self, request_id: str, decision: str) -> bool:
        """Whether the button code of `decision` on `request_id` has already decided something."""
        return bool(await self._connection.read(phone.CODE_USED_QUERY, (request_id, decision)))

    async def use_phone_code(self, use: phone.CodeUse, event: Event, *, agent: str, tool: str) -> bool:
        """Mark a button code as used, with `event` in the audit trail, in one transaction; False (and nothing
        recorded) when it was used already."""
        return await self.transaction(phone.using_code(use, event, agent=agent, tool=tool))
