"""`argobox audit export --format jsonl`: the audit trail as JSON Lines, verifiable offline.

One JSON object per line, keys sorted: the fields of `argobox audit --json` (`seq`, `at`, `request_id`, `event`,
`actor`, `agent`, `tool`, `detail`, `prev_hash`, `hash`) plus `at_epoch`, the exact stored timestamp the hash
covers (`at` is its ISO 8601 rendering, in milliseconds). The last line, when the store has a checkpoint the
export reaches, is `{"checkpoint": {...}}` (seq, hash, and the signature when signed), so
`argobox audit verify --file EXPORT` can check the export offline, its end included.

Every line passes through the redactor. Stored events were redacted when written; if redacting again changes an
event (a secret configured since), the line carries `"redacted_on_export": true`: its links are still checked,
but its content no longer matches its hash, and `verify` says so instead of calling it edited.

This module is the format (writing lines, reading them back); the store's trail is read for it through
`argobox.server.mediation.audit_trail`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from argobox.server.audit.chain import UNCHECKED, Row, canonical_detail
from argobox.server.audit.checkpoint import Checkpoint, CheckpointError
from argobox.server.redact import Redactor
from argobox.server.times import iso

EVENT_KEYS = ("seq", "at", "at_epoch", "request_id", "event", "actor", "agent", "tool", "detail", "prev_hash", "hash")


@dataclass(frozen=True, slots=True)
class ExportSummary:
    events: int
    first_seq: int | None
    last_seq: int | None
    checkpoint: Checkpoint | None
    redacted: int
    warning: str | None = None


def _line(row: Row, redact: Redactor) -> tuple[dict[str, Any], bool]:
    seq, at, request_id, event, actor, agent, tool, detail, prev_hash, hash_ = row
    content = {
        "seq": seq,
        "at": iso(at),
        "request_id": request_id,
        "event": event,
        "actor": actor,
        "agent": agent,
        "tool": tool,
        "detail": json.loads(detail),
    }
    shown = redact(content)
    return {**shown, "at_epoch": at, "prev_hash": prev_hash, "hash": hash_}, shown != content


def write_events(rows: Iterable[Row], out: TextIO, *, redact: Redactor) -> ExportSummary:
    """Write `rows` to `out` as export lines, each passed through `redact`. Raises OSError (and whatever reading
    `rows` raises)."""
    events = redacted = 0
    first = last = None
    for row in rows:
        line, changed = _line(row, redact)
        if changed:
            line["redacted_on_export"] = True
            redacted += 1
        out.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")
        events += 1
        first = row[0] if first is None else first
        last = row[0]
    return ExportSummary(events=events, first_seq=first, last_seq=last, checkpoint=None, redacted=redacted)


def finish_export(
    out: TextIO, written: ExportSummary, checkpoint: Checkpoint | None, *, since: float | None, warning: str | None
) -> ExportSummary:
    """End an export with its checkpoint line, when the checkpoint vouches for what was written.

    `checkpoint` was read before the rows' snapshot began, so it covers only rows in it; a partial export (`since`)
    that does not reach it gets none. Raises OSError."""
    if since is not None and (
        written.first_seq is None or (checkpoint is not None and checkpoint.seq < written.first_seq)
    ):
        checkpoint = None
    if checkpoint is not None:
        out.write(json.dumps({"checkpoint": checkpoint.to_json()}, sort_keys=True, separators=(",", ":")) + "\n")
    return replace(written, checkpoint=checkpoint, warning=warning)


class ExportFormatError(Exception):
    """Raised when a line of an export is not what `export_jsonl` writes."""

    def __init__(self, line_number: int, message: str) -> None:
        super().__init__(f"line {line_number}: {message}")


def _event_row(line_number: int, obj: dict[str, Any]) -> Row:
    missing = [key for key in EVENT_KEYS if key not in obj]
    if missing:
        raise ExportFormatError(line_number, f"not an audit event (missing {', '.join(missing)})")
    at_epoch = obj["at_epoch"]
    if type(at_epoch) is not float or iso(at_epoch) != obj["at"]:
        raise ExportFormatError(
            line_number, f"seq {obj['seq']}: `at` does not match `at_epoch`, the time the hash covers"
        )
    detail = UNCHECKED if obj.get("redacted_on_export") is True else canonical_detail(obj["detail"])
    return (
        obj["seq"],
        at_epoch,
        obj["request_id"],
        obj["event"],
        obj["actor"],
        obj["agent"],
        obj["tool"],
        detail,
        obj["prev_hash"],
        obj["hash"],
    )


def _objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("r", encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise ExportFormatError(number, "not JSON") from None
            if not isinstance(obj, dict):
                raise ExportFormatError(number, "not a JSON object")
            yield number, obj


def read_export_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint line of an export (it must be the last line), or None. Raises ExportFormatError, OSError."""
    found: Checkpoint | None = None
    last_number = checkpoint_number = 0
    for number, obj in _objects(path):
        last_number = number
        if "checkpoint" in obj:
            if found is not None:
                raise ExportFormatError(number, "a second checkpoint line")
            try:
                found = Checkpoint.from_json(obj["checkpoint"])
            except CheckpointError as exc:
                raise ExportFormatError(number, f"damaged checkpoint: {exc}") from None
            checkpoint_number = number
    if found is not None and checkpoint_number != last_number:
        raise ExportFormatError(checkpoint_number, "the checkpoint line is not the last line")
    return found


def export_rows(path: Path) -> Iterator[Row]:
    """The events of an export as chain rows, in file order. Raises ExportFormatError, OSError."""
    for number, obj in _objects(path):
        if "checkpoint" not in obj:
            yield _event_row(number, obj)


def export_hash_lookup(path: Path) -> Callable[[str], int | None]:
    def find(hash_: str) -> int | None:
        for _number, obj in _objects(path):
            if obj.get("hash") == hash_ and isinstance(obj.get("seq"), int):
                return int(obj["seq"])
        return None

    return find
