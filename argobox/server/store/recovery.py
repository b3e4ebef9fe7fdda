"""Crash recovery: a request whose executing process died is marked `unknown`, and never run again.

Each executing request records its executor: host, process id and the process's lease (`executors`). A request is
recovered when its executor's lease is free. A request recorded before leases existed names only host and process
id: it is recovered when that process is on this host and gone; another host's cannot be checked, so it is assumed
alive.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from argobox.server.store.connection import Connection
from argobox.server.store.executors import lease_held, remove_stale
from argobox.server.store.records import Event, RequestStatus
from argobox.server.store.requests import transition_body

INTERRUPTED_MESSAGE = (
    "the executing process stopped; whether the action ran is unknown, check the target before retrying"
)


def this_executor() -> str:
    """This process as host and process id (what a request records, with its lease, is `Lease.executor`)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def executor_alive(executor: str | None, *, db_path: Path | None = None) -> bool:
    """Whether the process named by `executor` may still be running: by its lease on the store at `db_path` when it
    names one, else by its process id."""
    held = lease_held(db_path, executor or "") if db_path is not None else None
    if held is not None:
        return held
    host, _, pid = (executor or "").partition("/")[0].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return host != socket.gethostname() and bool(host)  # another host's executor: assume alive
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def recover_interrupted(connection: Connection, db_path: Path) -> list[str]:
    """Mark executing requests whose executor process is gone as `unknown`; returns their ids. Then remove the
    lease files of processes that have ended.

    (`approved` is looked for too: stores written before approval and execution became one transaction may hold
    requests left in it.)"""
    rows = await connection.read(
        "SELECT id, executor, status FROM requests WHERE status IN (?, ?)",
        (RequestStatus.APPROVED.value, RequestStatus.EXECUTING.value),
    )
    recovered: list[str] = []
    for request_id, executor, status in [(row["id"], row["executor"], row["status"]) for row in rows]:
        if executor_alive(executor, db_path=db_path):
            continue
        detail = {"was": status, "executor": executor, "message": INTERRUPTED_MESSAGE}
        body = transition_body(
            request_id,
            where="status = ? AND executor IS ?",
            params=(status, executor),
            sets={"status": RequestStatus.UNKNOWN.value},
            events=[Event(event="interrupted", actor="argobox", detail=detail)],
        )
        if await connection.transaction(body) is not None:
            recovered.append(request_id)
    remove_stale(db_path)
    return recovered
