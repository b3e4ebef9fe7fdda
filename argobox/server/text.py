"""Text that did not come from the operator's own configuration, made safe to show: bounded in length."""

from __future__ import annotations

MAX_SHOWN_CHARS = 200


def shorten(value: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """Bound a client-supplied string before it reaches a message or the audit trail."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"
