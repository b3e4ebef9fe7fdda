"""Where each key is written in a TOML file, so that a configuration error can name its line.

`tomllib` reports a line only for a syntax error; for valid TOML it keeps no positions. `key_lines` scans the text
once (strings, arrays, inline tables and array-of-tables headers included) and returns the line on which every
table and key is first written, under the same path pydantic reports: `("agents", "openclaw", "rules", 0, "effect")`.
It is only ever given text that `tomllib` has already accepted, and it never raises: on anything it does not expect
it stops, and the lines found so far are what it knows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

KeyPath = tuple[str | int, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}\r\n#")


class _Stop(Exception):
    """The text is not what the scanner expects; stop with what was found."""


def key_lines(text: str) -> dict[KeyPath, int]:
    """The 1-based line on which each table, array-of-tables entry and key of `text` is first written."""
    scanner = _Scanner(text)
    with contextlib.suppress(_Stop):
        scanner.document()
    return scanner.lines


def line_of(lines: dict[KeyPath, int], loc: Sequence[str | int]) -> int | None:
    """The line of `loc`, else of its nearest ancestor that is written in the file (a missing key's table)."""
    for end in range(len(loc), 0, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self._last_entry: dict[KeyPath, int] = {}
        """Each array of tables (by its path) and the index of its latest `[[...]]` entry."""

    def document(self) -> None:
        table: KeyPath = ()
        while self._blank_lines():
            if self.text.startswith("[", self.pos):
                table = self._header()
            else:
                self._key_value(table)
            self._end_of_line()

    def _peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def _advance(self, count: int = 1) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + count)
        self.pos += count

    def _spaces(self) -> None:
        while self._peek() in (" ", "\t"):
            self._advance()

    def _blank_lines(self) -> bool:
        """Skip whitespace, line ends and comments; whether anything is left."""
        while self._peek():
            if self._peek() in " \t\r\n":
                self._advance()
            elif self._peek() == "#":
                self._comment()
            else:
                return True
        return False

    def _comment(self) -> None:
        end = self.text.find("\n", self.pos)
        self._advance((end if end >= 0 else len(self.text)) - self.pos)

    def _end_of_line(self) -> None:
        self._spaces()
        if self._peek() == "#":
            self._comment()

    def _key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self._spaces()
            quote = self._peek()
            if quote in ('"', "'"):
                start = self.pos + 1
                self._string_line(quote)
                parts.append(self.text[start : self.pos - 1].replace('\\"', '"').replace("\\\\", "\\"))
            else:
                start = self.pos
                while self._peek() in _BARE:
                    self._advance()
                if self.pos == start:
                    raise _Stop
                parts.append(self.text[start : self.pos])
            self._spaces()
            if self._peek() != ".":
                return parts
            self._advance()

    def _resolve(self, keys: Sequence[str]) -> KeyPath:
        """The concrete path of a header's keys: an array of tables on the way means its latest entry."""
        path: list[str | int] = []
        for key in keys:
            path.append(key)
            entry = self._last_entry.get(tuple(path))
            if entry is not None:
                path.append(entry)
        return tuple(path)

    def _header(self) -> KeyPath:
        line = self.line
        array = self.text.startswith("[[", self.pos)
        self._advance(2 if array else 1)
        keys = self._key()
        if not self.text.startswith("]]" if array else "]", self.pos):
            raise _Stop
        self._advance(2 if array else 1)
        if not array:
            path = self._resolve(keys)
        else:
            parent = (*self._resolve(keys[:-1]), keys[-1])
            self._last_entry[parent] = self._last_entry.get(parent, -1) + 1
            path = (*parent, self._last_entry[parent])
        self._record(path, line)
        return path

    def _record(self, path: KeyPath, line: int) -> None:
        """`path` is written on `line`, and so, if not written earlier, are the tables it implies."""
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], line)

    def _key_value(self, table: KeyPath) -> None:
        line = self.line
        path = (*table, *self._key())
        if self._peek() != "=":
            raise _Stop
        self._advance()
        self._record(path, line)
        self._value(path)

    def _value(self, path: KeyPath) -> None:
        self._spaces()
        first = self._peek()
        if self.text.startswith('"""', self.pos) or self.text.startswith("'''", self.pos):
            self._string_block(first)
        elif first in ('"', "'"):
            self._string_line(first)
        elif first == "[":
            self._array(path)
        elif first == "{":
            self._inline_table(path)
        else:
            while self._peek() and self._peek() not in _SCALAR_END:
                self._advance()

    def _string_line(self, quote: str) -> None:
        self._advance()
        while self._peek() != quote:
            if not self._peek() or self._peek() == "\n":
                raise _Stop
            self._advance(2 if quote == '"' and self._peek() == "\\" else 1)
        self._advance()

    def _string_block(self, quote: str) -> None:
        self._advance(3)
        while not self.text.startswith(quote * 3, self.pos):
            if not self._peek():
                raise _Stop
            self._advance(2 if quote == '"' and self._peek() == "\\" else 1)
        self._advance(3)
        for _ in range(2):  # up to two quotes right before the closing three belong to the string
            if self._peek() == quote:
                self._advance()

    def _array(self, path: KeyPath) -> None:
        self._advance()
        index = 0
        while self._blank_lines() and self._peek() != "]":
            start = self.pos
            self.lines.setdefault((*path, index), self.line)
            self._value((*path, index))
            if self.pos == start:
                raise _Stop
            index += 1
            self._blank_lines()
            if self._peek() == ",":
                self._advance()
        self._advance()

    def _inline_table(self, path: KeyPath) -> None:
        self._advance()
        while self._blank_lines() and self._peek() != "}":
            self._key_value(path)
            self._blank_lines()
            if self._peek() == ",":
                self._advance()
        self._advance()
