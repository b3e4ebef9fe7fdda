"""Server-rendered pages: one Jinja2 environment with autoescaping everywhere, and the filters that make every value
that came from an agent inert and visibly so.

Autoescaping turns markup into text. `inert` also shows the characters a browser would otherwise hide or obey, with
the stand-ins the terminal gets (`ops.inert`, ArgoBox's one definition of inert text): control characters (terminal
escape sequences among them) as `\\x1b`, line breaks as `\\n`, bidirectional overrides and zero-width characters as
`<U+202E>`, so what the operator reads is exactly what the agent sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from argobox.server.console import ops

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def visible(text: str) -> str:
    """`text` with every control, bidi and zero-width character written as a visible stand-in."""
    return ops.inert(text)


def inert(value: Any) -> str:
    """Any value as plain text for the page: strings as they are (made visible), everything else as JSON laid out
    on lines of its own (JSON escapes the line breaks inside its strings)."""
    if isinstance(value, str):
        return visible(value)
    dumped = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return ops.inert(dumped, lines=True)


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
    filters = cast("dict[str, Callable[..., str]]", env.filters)
    filters.update(inert=inert, when=when, one_line=one_line)
    return env
