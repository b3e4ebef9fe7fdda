"""`argobox audit verify`: walk the chain of a trail (or of an export) and check it against the checkpoint.

The answer is either `ok: N events, head <hash>` or the first broken sequence number and what is wrong:
an edited event, deleted events, reordered events, a truncated tail, a trail rewritten up to its checkpoint, a
prune that is not covered by the checkpoint, or a checkpoint that is missing, damaged or wrongly signed.
Verification only reads; the store's own trail is read through `argobox.server.mediation.audit_trail`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from argobox.server.audit.chain import GENESIS, Anchor, ChainBreak, ChainWalker, Row, Walk, start_break
from argobox.server.audit.checkpoint import Checkpoint, CheckpointError
from argobox.server.audit.export import ExportFormatError, export_hash_lookup, export_rows, read_export_checkpoint
from argobox.server.audit.keys import VerifyKey


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


def unreadable_checkpoint(exc: CheckpointError) -> VerifyReport:
    """The report on a trail whose checkpoint file exists but cannot be read."""
    return VerifyReport(broken=ChainBreak(None, "checkpoint", str(exc)))


def verify_rows(
    rows: Iterable[Row],
    find_seq: Callable[[str], int | None],
    *,
    checkpoint: Checkpoint | None,
    checkpoint_file: Path,
    key: VerifyKey | None,
) -> VerifyReport:
    """Verify a store's trail (`rows`, in sequence order; `find_seq` looks a hash up in the same trail) against its
    checkpoint, read from `checkpoint_file` before the rows' snapshot began (so it covers only rows in it)."""
    expect = Anchor(checkpoint.seq, checkpoint.hash) if checkpoint is not None else None
    walk = ChainWalker(find_seq, expect).walk(rows)
    report = _conclude(walk, checkpoint, key, offline=False)
    if report.ok and checkpoint is None and walk.events:
        report.broken = ChainBreak(
            None,
            "checkpoint",
            f"there is no checkpoint {str(checkpoint_file)!r}: whether events "
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
