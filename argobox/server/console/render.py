"""Server-rendered pages: one Jinja2 environment with autoescaping everywhere, and the filters that make every value
that came from an agent inert and visibly so.

Autoescaping turns markup into text. `inert` also shows the characters a browser would otherwise hide or obey:
control characters (terminal escape sequences among them), bidirectional overrides and zero-width characters are
written out as `\\u…` escapes, so what the operator reads is exactly what the agent sent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

_HIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)


def visible(text: str) -> str:
    """`text` with every control, bidi and zero-width character written as a `\\uXXXX` escape."""
    return _HIDDEN.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def inert(value: Any) -> str:
    """Any value as plain text for the page: strings as they are (made visible), everything else as JSON."""
    if isinstance(value, str):
        return visible(value)
    dumped = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return "\n".join(visible(line) for line in dumped.split("\n"))  # JSON escapes newlines inside strings


def when(iso: str | None) -> str:
    """An ISO 8601 UTC time from the store as `2026-11-25 10:00:03 UTC` (the page's script shows local time)."""
    if not iso:
        return "-"
    return iso.replace("T", " ").split(".")[0].removesuffix("Z") + " UTC"


def one_line(value: Any) -> str:
    """A compact single-line JSON rendering (for lists), made visible."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return visible(text)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["inert"] = inert
    env.filters["when"] = when
    env.filters["one_line"] = one_line
    return env
