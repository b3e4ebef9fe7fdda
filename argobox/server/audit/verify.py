"""`argobox audit verify`: walk the chain of the store (or of an export) and check it against the checkpoint.

The answer is either `ok: N events, head <hash>` or the first broken sequence number and what is wrong:
an edited event, deleted events, reordered events, a truncated tail, a trail rewritten up to its checkpoint, a
prune that is not covered by the checkpoint, or a checkpoint that is missing, damaged or wrongly signed.
Verification only reads: it opens the store read-only and works while ArgoBox processes are writing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from argobox.server.audit.chain import (
    GENESIS,
    Anchor,
    ChainBreak,
    ChainWalker,
    Walk,
    open_readonly,
    start_break,
    store_hash_lookup,
    store_rows,
)
from argobox.server.audit.checkpoint import Checkpoint, CheckpointError, VerifyKey, checkpoint_path, read_checkpoint
from argobox.server.audit.export import ExportFormatError, export_hash_lookup, export_rows, read_export_checkpoint


@dataclass(slots=True)
class VerifyReport:
    events: int = 0
    head: Anchor = field(default_factory=lambda: Anchor(0, GENESIS))
    broken: ChainBreak | None = None
    notes: list[str] = field(default_factory=list[str])

    @property
    def ok(self) -> bool:
        return self.broken is None

    def text(self) -> str:
        first = str(self.broken) if self.broken is not None else f"ok: {self.events} events, head {self.head.hash}"
        return "\n".join([first, *(f"  {note}" for note in self.notes)])


def verify_store(db_path: Path, *, key: VerifyKey | None) -> VerifyReport:
    """Verify the store at `db_path` with its checkpoint. Raises sqlite3.Error when the store cannot be read."""
    cp_file = checkpoint_path(db_path)
    try:
        checkpoint = read_checkpoint(cp_file)  # read before the snapshot, so it covers only committed rows
    except CheckpointError as exc:
        return VerifyReport(broken=ChainBreak(None, "checkpoint", str(exc)))
    db = open_readonly(str(db_path))
    try:
        db.execute("BEGIN")  # one snapshot for the walk and the look-ups that explain a break
        expect = Anchor(checkpoint.seq, checkpoint.hash) if checkpoint is not None else None
        walk = ChainWalker(store_hash_lookup(db), expect).walk(store_rows(db))
    finally:
        db.close()
    report = _conclude(walk, checkpoint, key, offline=False)
    if report.ok and checkpoint is None and walk.events:
        report.broken = ChainBreak(
            None,
            "checkpoint",
            f"there is no checkpoint {str(cp_file)!r}: whether events "
            "were removed from the end cannot be checked (it was deleted, or the store was "
            "copied without it)",
        )
    return report


def verify_export(path: Path, *, key: VerifyKey | None) -> VerifyReport:
    """Verify an export written by `argobox audit export`, offline. Raises OSError when it cannot be read."""
    try:
        checkpoint = read_export_checkpoint(path)
        expect = Anchor(checkpoint.seq, checkpoint.hash) if checkpoint is not None else None
        walk = ChainWalker(export_hash_lookup(path), expect).walk(export_rows(path))
    except ExportFormatError as exc:
        return VerifyReport(broken=ChainBreak(None, "edited", str(exc)))
    except UnicodeDecodeError:
        return VerifyReport(broken=ChainBreak(None, "edited", "the export is not UTF-8 text"))
    report = _conclude(walk, checkpoint, key, offline=True)
    if report.ok and checkpoint is None and walk.events:
        if key is not None:
            report.broken = ChainBreak(
                None, "signature", "the export has no checkpoint line, but a verification key is configured"
            )
        else:
            report.notes.append("the export has no checkpoint line: events removed from its end cannot be detected")
    if walk.unchecked:
        report.notes.append(
            f"{walk.unchecked} events were redacted again on export: their links were checked, their content cannot be"
        )
    return report


def _conclude(walk: Walk, checkpoint: Checkpoint | None, key: VerifyKey | None, *, offline: bool) -> VerifyReport:
    report = VerifyReport(events=walk.events, head=walk.head)
    if walk.broken is not None:
        report.broken = walk.broken
        return report
    if checkpoint is not None and key is not None and (problem := key.problem(checkpoint)) is not None:
        report.broken = ChainBreak(checkpoint.seq, "signature", problem)
        return report
    start = start_break(walk, covered_up_to=checkpoint.seq if checkpoint is not None else None)
    if start is not None:
        if offline and start.kind == "deleted" and walk.first is not None:
            report.notes.append(f"the export starts at seq {walk.first[0]}; the events before it are not in it")
        else:
            report.broken = start
            return report
    if checkpoint is not None:
        if checkpoint.seq > walk.head.seq:
            gone = walk.head.seq + 1
            span = f"event {gone} was" if gone == checkpoint.seq else f"events {gone}..{checkpoint.seq} were"
            report.broken = ChainBreak(
                gone,
                "truncated",
                f"the checkpoint records seq {checkpoint.seq} but the "
                f"trail ends at seq {walk.head.seq}: {span} removed from the end",
            )
            return report
        report.notes.append(_checkpoint_note(checkpoint, key, walk.head.seq))
    return report


def _checkpoint_note(checkpoint: Checkpoint, key: VerifyKey | None, head_seq: int) -> str:
    if checkpoint.signature is None:
        signed = "unsigned"
    elif key is None:
        signed = f"signed by key {checkpoint.key_id}, signature not checked (no key configured)"
    else:
        signed = f"signature verified with key {key.key_id}"
    note = f"checkpoint: seq {checkpoint.seq}, {signed}"
    if head_seq > checkpoint.seq:
        note += (
            f"; the {head_seq - checkpoint.seq} newest events are not checkpointed yet (a writer is running, "
            "or stopped before writing it)"
        )
    return note
