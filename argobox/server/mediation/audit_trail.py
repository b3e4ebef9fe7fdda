"""The store's audit trail verified and exported: the store's read-only snapshot of its trail, put through the
audit room's walker and line format (`argobox audit verify` and `argobox audit export`).

Both only read: they open the store read-only and work while ArgoBox processes are writing. The checkpoint is read
before the snapshot begins, so it covers only rows the snapshot holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from argobox.server.audit import (
    CheckpointError,
    ExportSummary,
    VerifyKey,
    VerifyReport,
    checkpoint_path,
    finish_export,
    read_checkpoint,
    unreadable_checkpoint,
    verify_rows,
    write_events,
)
from argobox.server.redact import Redactor
from argobox.server.store import trail_snapshot


def verify_store(db_path: Path, *, key: VerifyKey | None) -> VerifyReport:
    """Verify the store at `db_path` with its checkpoint. Raises sqlite3.Error when the store cannot be read."""
    checkpoint_file = checkpoint_path(db_path)
    try:
        checkpoint = read_checkpoint(checkpoint_file)
    except CheckpointError as exc:
        return unreadable_checkpoint(exc)
    with trail_snapshot(db_path) as trail:  # one snapshot for the walk and the look-ups that explain a break
        return verify_rows(
            trail.rows(), trail.find_seq, checkpoint=checkpoint, checkpoint_file=checkpoint_file, key=key
        )


def export_jsonl(db_path: Path, out: TextIO, *, since: float | None, redact: Redactor) -> ExportSummary:
    """Write the trail (from the first event at or after `since`) to `out`. Raises sqlite3.Error, OSError."""
    warning = None
    try:
        checkpoint = read_checkpoint(checkpoint_path(db_path))
    except CheckpointError as exc:
        checkpoint, warning = None, f"{exc}; exported without a checkpoint line (run `argobox audit verify`)"
    with trail_snapshot(db_path) as trail:
        start = trail.first_seq_since(since) if since is not None else 0
        written = write_events(trail.rows(from_seq=start), out, redact=redact)
    return finish_export(out, written, checkpoint, since=since, warning=warning)
