"""Time as ArgoBox shows and reads it: ISO 8601 in UTC. A time written without a zone is UTC, everywhere."""

from __future__ import annotations

from datetime import UTC, datetime

EXAMPLE = "2026-01-31T12:00:00Z"


class TimeFormatError(ValueError):
    """Raised when a text is not an ISO 8601 date or date-time; the message says what was expected."""


def iso(ts: float | None) -> str | None:
    """An epoch timestamp as ISO 8601 UTC with millisecond precision, e.g. 2026-11-25T01:02:03.456Z."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> float:
    """An ISO 8601 date or date-time as an epoch timestamp; without a zone it is UTC. Raises `TimeFormatError`."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        # Quoted whole or not at all: a cut could leave the start of a secret that redaction then misses.
        shown = repr(value) if len(value) <= 64 else f"a text of {len(value)} characters"
        raise TimeFormatError(f"{shown} is not an ISO 8601 date or date-time (e.g. 2026-01-31 or {EXAMPLE})") from None
    return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).timestamp()
