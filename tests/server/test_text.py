"""`inert`: no text from outside the operator's configuration can steer the operator's terminal."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from argobox.server.text import inert, shorten

INVISIBLE = ("Cc", "Cf", "Cs", "Zl", "Zp")


def dangerous(text: str, *, lines: bool = False) -> list[str]:
    """The characters of `text` a terminal would act on or not show."""
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in INVISIBLE and not (lines and c == "\n")]


def test_no_control_or_invisible_format_character_survives() -> None:
    every = "".join(chr(cp) for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) in INVISIBLE)

    shown = inert(every)

    assert dangerous(shown) == []
    assert dangerous(inert(every, lines=True), lines=True) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("\x1b[2J\x1b[Hall clear", "\\x1b[2J\\x1b[Hall clear", id="clear-screen"),
        pytest.param("\x1b]0;all clear\x07", "\\x1b]0;all clear\\x07", id="window-title"),
        pytest.param(
            "\x1b]8;;http://127.0.0.1/x\x1b\\click\x1b]8;;\x1b\\",
            "\\x1b]8;;http://127.0.0.1/x\\x1b\\click\\x1b]8;;\\x1b\\",
            id="osc8-hyperlink",
        ),
        pytest.param("unlock\rlock  ", "unlock\\rlock  ", id="carriage-return"),
        pytest.param("lock.\u202ekcolnu", "lock.<U+202E>kcolnu", id="bidi-override"),
        pytest.param("a\u2066b\u2069c", "a<U+2066>b<U+2069>c", id="bidi-isolates"),
        pytest.param("\x9b2J\x7f", "\\x9b2J\\x7f", id="c1-csi-and-del"),
        pytest.param("lo\u200bck\ufeff", "lo<U+200B>ck<U+FEFF>", id="zero-width-and-bom"),
        pytest.param("\ud800", "<U+D800>", id="lone-surrogate"),
        pytest.param("a\nb\tc", "a\\nb\\tc", id="line-feed-and-tab"),
        pytest.param("ünïcode ✓ 日本 🔒", "ünïcode ✓ 日本 🔒", id="printable-text-unchanged"),
    ],
)
def test_each_dangerous_character_gets_a_visible_stand_in(text: str, expected: str) -> None:
    assert inert(text) == expected


def test_lines_keeps_line_feeds_only_and_is_idempotent() -> None:
    text = "row 1\x1b[1A\nrow 2\r\n"

    once = inert(text, lines=True)

    assert once == "row 1\\x1b[1A\nrow 2\\r\n"
    assert inert(once, lines=True) == once and inert(inert("\x1b")) == "\\x1b"


def test_shorten_bounds_long_text() -> None:
    assert shorten("x" * 10, 4) == "xxxx... (10 characters)"
    assert shorten("short") == "short"
