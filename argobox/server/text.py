"""Text that did not come from the operator's own configuration, made safe to show: bounded and inert.

An agent (or a backend it can influence: a container's logs, a Home Assistant entity's state) chooses some of the
text an operator reads. Shown raw in a terminal, control characters and invisible format characters can clear the
screen, overwrite a line, set the window title, add hyperlinks, or reorder what the operator reads (an unlock shown as
a lock). `inert` replaces every such character with a visible stand-in. A leaf module: it imports nothing from
`argobox.server`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MAX_SHOWN_CHARS = 200

_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Controls, format characters (bidi overrides and isolates, zero-width characters, the BOM, tag characters), lone
surrogates, and the line and paragraph separators."""
_INVISIBLE_LETTERS = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0, 0x034F})
"""Characters that are letters or marks to Unicode but show as nothing (Hangul fillers, the grapheme joiner)."""
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_SUSPECT = re.compile(r"[^\x20-\x7e]")
_SUSPECT_KEEPING_LINES = re.compile(r"[^\x20-\x7e\n]")


def shorten(value: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """Bound a client-supplied string before it reaches a message or the audit trail."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"


@lru_cache(maxsize=4096)
def _stand_in(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"\\x{code:02x}"
    if code in _INVISIBLE_LETTERS or unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return f"<U+{code:04X}>"
    return char


def inert(text: str, *, lines: bool = False) -> str:
    """`text` with every control character (C0, C1, ESC, DEL, CR) and every invisible format character (bidi
    overrides and isolates U+202A-202E and U+2066-2069, zero-width characters, U+FEFF, ...) replaced by a visible
    stand-in: ESC becomes `\\x1b`, CR `\\r`, U+202E `<U+202E>`.

    With `lines`, line feeds are kept, for multi-line text laid out by ArgoBox itself (a table, a screen); values
    from elsewhere go through `inert` without it first, so that they cannot start a line of their own.
    """
    pattern = _SUSPECT_KEEPING_LINES if lines else _SUSPECT
    return pattern.sub(lambda match: _stand_in(match.group()), text)
