"""The hash chain of the audit trail: canonical content, event hashes, and the walk that verifies a trail.

Every audit event stores `prev_hash` (the hash of the event before it, or `GENESIS` for the first event ever) and
`hash`, the SHA-256 (lowercase hex) of the UTF-8 bytes of its canonical content:

    the JSON object {"actor", "agent", "at", "detail", "event", "prev_hash", "request_id", "seq", "tool"}
    with keys sorted, no whitespace, non-ASCII characters written as \\u escapes (`json.dumps(..., sort_keys=True,
    separators=(",", ":"))`), where `at` is the stored IEEE-754 double written as its shortest round-trip
    decimal (what `json.dumps` writes for a float), and `detail` is the canonical JSON of the (redacted) detail
    object, which is also exactly the text stored in the `detail` column.

So editing any field of an event breaks its own hash; deleting, inserting or moving events breaks the link of the
event after it; and removing events at the end is caught by the checkpoint (see `checkpoint`), which records
the head (sequence number and hash) outside the database. Pruning old events is legitimate only through a
`pruned` event in the chain that names the last removed event (`through_seq`, `through_hash`): the first event
left must link to exactly that.

The walk is written to be fast (about a million events in a few seconds): rows are plain tuples streamed from
the store (`argobox.server.store`) or from an export, and the canonical text is assembled directly rather than
through `json.dumps`.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, cast

GENESIS: Final = "0" * 64
"""The `prev_hash` of the first event of a trail."""

PRUNED_EVENT: Final = "pruned"
"""The audit event that records a prune; its detail names the last removed event."""

Row = tuple[int, float, str | None, str, str, str | None, str | None, Any, str, str]
"""(seq, at, request_id, event, actor, agent, tool, detail, prev_hash, hash); `detail` is the canonical text, or
`UNCHECKED` for an exported event whose content was redacted again on export (only its links can be checked)."""

UNCHECKED: Final = object()

_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
_float = float.__repr__


def canonical_detail(detail: Any) -> str:
    """The canonical JSON text of a detail object, as stored in the `detail` column and hashed."""
    return json.dumps(detail, sort_keys=True, separators=(",", ":"))


def canonical_event(  # noqa: PLR0917 - the hashed fields, in order; positional for speed (called per event)
    seq: int,
    at: float,
    request_id: str | None,
    event: str,
    actor: str,
    agent: str | None,
    tool: str | None,
    detail: str,
    prev_hash: str,
) -> str:
    """The canonical content of one event (see the module docstring); `detail` is its canonical JSON text.

    Equal to `json.dumps({...}, sort_keys=True, separators=(",", ":"))` with `detail` parsed, but several times
    faster (the verifier runs it a million times). Raises TypeError when a string field is not a string or `at`
    is not a float; any other wrong type gives a text no writer produced, hence a hash that does not match.
    """
    return (
        f'{{"actor":{_quote(actor)},"agent":{"null" if agent is None else _quote(agent)},"at":{_float(at)},'
        f'"detail":{detail},"event":{_quote(event)},"prev_hash":{_quote(prev_hash)},'
        f'"request_id":{"null" if request_id is None else _quote(request_id)},"seq":{seq},'
        f'"tool":{"null" if tool is None else _quote(tool)}}}'
    )


def event_hash(  # noqa: PLR0917 - as canonical_event
    seq: int,
    at: float,
    request_id: str | None,
    event: str,
    actor: str,
    agent: str | None,
    tool: str | None,
    detail: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical content of one event."""
    text = canonical_event(seq, at, request_id, event, actor, agent, tool, detail, prev_hash)
    return _sha256(text.encode("ascii")).hexdigest()


_sha256 = hashlib.sha256


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first thing found wrong: at which sequence number (None when it is not about one event), and what."""

    seq: int | None
    kind: str
    """edited, deleted, reordered, truncated, rewritten, unverified, checkpoint or signature."""
    message: str

    def __str__(self) -> str:
        where = f"broken at seq {self.seq}" if self.seq is not None else "broken"
        return f"{where}: {self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a verified stretch of the chain ends: seq and hash of an event (seq 0 and GENESIS before any)."""

    seq: int
    hash: str


@dataclass(slots=True)
class Walk:
    """The result of walking rows in sequence order: what was seen, and the first break if any."""

    events: int = 0
    first: Row | None = None
    head: Anchor = field(default_factory=lambda: Anchor(0, GENESIS))
    unchecked: int = 0
    prunes: list[tuple[int, int, str]] = field(default_factory=list[tuple[int, int, str]])
    """(seq of the prune event, through_seq, through_hash) for every prune event walked."""
    broken: ChainBreak | None = None


class ChainWalker:
    """Walks rows in sequence order, checking each event's hash and its link to the event before it.

    `find_seq` looks up which event (if any) has a given hash; it is called only to explain a break.
    `expect` is a checkpoint anchor: the walk checks the event at its seq has its hash.
    """

    def __init__(self, find_seq: Callable[[str], int | None], expect: Anchor | None = None) -> None:
        self._find_seq = find_seq
        self._expect = expect

    def walk(self, rows: Iterable[Row]) -> Walk:
        result = Walk()
        digest = event_hash
        expect_seq = self._expect.seq if self._expect is not None else None
        last_seq, last_hash, count = 0, GENESIS, 0
        for row in rows:
            seq, at, request_id, event, actor, agent, tool, detail, prev_hash, stored = row
            if detail is UNCHECKED:
                intact = True
                result.unchecked += 1
            else:
                try:
                    intact = digest(seq, at, request_id, event, actor, agent, tool, detail, prev_hash) == stored
                except (TypeError, ValueError, UnicodeError, AttributeError):
                    intact = False
            if count == 0:
                result.first = row
                linked = True
            else:
                linked = prev_hash == last_hash and type(seq) is int and seq > last_seq
            if not (intact and linked):
                result.broken = self._diagnose(row, intact, count == 0, Anchor(last_seq, last_hash))
                break
            if seq == expect_seq and self._expect is not None and stored != self._expect.hash:
                result.broken = ChainBreak(
                    seq,
                    "rewritten",
                    "this event does not have the hash the checkpoint records for it: the trail "
                    "was rewritten up to here (or the checkpoint belongs to another trail)",
                )
                break
            if event == PRUNED_EVENT:
                result.prunes.append((seq, *_prune_target(detail)))
            count += 1
            last_seq, last_hash = seq, stored
        result.events = count
        result.head = Anchor(last_seq, last_hash)
        return result

    def _diagnose(self, row: Row, intact: bool, first: bool, previous: Anchor) -> ChainBreak:
        seq, prev_hash = row[0], row[8]
        if type(seq) is not int:  # an export can hold anything
            return ChainBreak(None, "edited", f"an event after seq {previous.seq} has no valid sequence number")
        if not first and prev_hash != previous.hash:
            origin = self._find_seq(prev_hash) if type(prev_hash) is str else None
            if origin is not None and origin != previous.seq:
                return ChainBreak(
                    seq,
                    "reordered",
                    f"the event at seq {seq} was chained after the event at seq "
                    f"{origin}, not after seq {previous.seq}: events were moved",
                )
        if not first and seq <= previous.seq:
            return ChainBreak(seq, "reordered", f"seq {seq} comes after seq {previous.seq}")
        if not intact:
            return ChainBreak(seq, "edited", "the event's content does not match its hash")
        if seq > previous.seq + 1:
            missing = _span(previous.seq + 1, seq - 1)
            return ChainBreak(
                previous.seq + 1,
                "deleted",
                f"{missing} missing: seq {seq} is chained to an event that is not in the trail",
            )
        return ChainBreak(
            previous.seq,
            "edited",
            f"seq {seq} is chained to a different event than the one now at "
            f"seq {previous.seq}: that event was replaced",
        )


def _prune_target(detail: Any) -> tuple[int, str]:
    """(through_seq, through_hash) of a prune event's detail text; (-1, "") when it does not name them."""
    try:
        parsed: Any = json.loads(detail) if isinstance(detail, str) else None
    except ValueError:
        return -1, ""
    if not isinstance(parsed, dict):
        return -1, ""
    fields = cast(dict[str, Any], parsed)
    through_seq, through_hash = fields.get("through_seq"), fields.get("through_hash")
    if type(through_seq) is int and isinstance(through_hash, str):
        return through_seq, through_hash
    return -1, ""


def _span(first: int, last: int) -> str:
    return f"event {first} is" if first == last else f"events {first}..{last} are"


def start_break(walk: Walk, *, covered_up_to: int | None) -> ChainBreak | None:
    """Why the walked trail does not start where it should, or None.

    A trail starts at seq 1 from GENESIS, or right after the event a prune event names (`through_seq`,
    `through_hash`), that prune event being covered by the checkpoint (`covered_up_to`; None: no requirement).
    """
    first = walk.first
    if first is None:
        return None
    seq, prev_hash = first[0], first[8]
    if seq == 1:
        if prev_hash == GENESIS:
            return None
        return ChainBreak(1, "edited", "the first event does not start from the genesis hash")
    vouching = [p for p in walk.prunes if (p[1], p[2]) == (seq - 1, prev_hash)]
    if vouching:
        record = min(p[0] for p in vouching)
        if covered_up_to is None or record <= covered_up_to:
            return None
        return ChainBreak(
            record,
            "unverified",
            f"the prune event at seq {record} that removed events up to seq "
            f"{seq - 1} is not covered by the checkpoint (seq {covered_up_to})",
        )
    earlier = [p[1] for p in walk.prunes if p[1] < seq - 1]
    gone_from = max(earlier, default=0) + 1
    return ChainBreak(gone_from, "deleted", f"{_span(gone_from, seq - 1)} missing and no prune event accounts for them")
