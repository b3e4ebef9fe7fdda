"""Pydantic's complaints about a configuration value, said plainly: what the value is and what is expected there.

The validator's own text ("Input should be 'allow', 'approve' or 'deny'", "String should match pattern '^[a-z]...'")
names a Python type or a regular expression; an operator editing a TOML file needs the form of the value instead,
and for a misspelled choice, the choice probably meant.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from pydantic_core import ErrorDetails

PATTERNS = {
    r"^[a-z][a-z0-9_-]{0,63}$": "a valid name: expected a lowercase letter, then up to 63 lowercase letters, "
    "digits, '-' or '_' (e.g. openclaw)",
    r"^[a-z][a-z0-9_]{0,31}$": "a valid name: expected a lowercase letter, then up to 31 lowercase letters, digits "
    "or '_'",
    r"^[0-9a-f]{64}$": "valid: expected 64 lowercase hexadecimal digits, the sha256 of a token (`argobox token new` "
    "prints the line to paste)",
    r"^[A-Za-z_][A-Za-z0-9_]{0,127}$": "valid: expected an environment variable name (letters, digits and '_', "
    "not starting with a digit)",
    r"^https?://[^\s]+$": "valid: expected an http:// or https:// URL without spaces",
    r"^notify\.[a-z0-9_]{1,64}$": "valid: expected a Home Assistant notify service, e.g. notify.mobile_app_phone",
}
"""The patterns of the configuration's names and values, in words (the text follows "VALUE is not ...")."""
KINDS = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text in quotes",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": 'a list, e.g. ["a", "b"]',
    "is_instance_of": "a path in quotes",
    "path_type": "a path in quotes",
}
BOUNDS = {
    "greater_than_equal": ("ge", "must be at least {}"),
    "greater_than": ("gt", "must be more than {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "less_than": ("lt", "must be less than {}"),
}
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")
SHOWN_CHARS = 60


def plain_message(error: ErrorDetails) -> str:
    """What is wrong with the value of one pydantic error, in plain words (pydantic's own text only for an error
    type not known here, and our validators' own messages as they are)."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in ("literal_error", "enum"):
        return _not_a_choice(value, str(ctx.get("expected", "")))
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        words = PATTERNS.get(pattern, f"valid: expected text of the form {pattern}")
        return f"{shown(value)} is not {words}"
    if kind in KINDS:
        return f"expected {KINDS[kind]}, not {_described(value, KINDS[kind])}"
    if kind in BOUNDS:
        key, words = BOUNDS[kind]
        return f"{words.format(shown(ctx.get(key)))}, not {shown(value)}"
    if kind in ("string_too_short", "string_too_long"):
        bound = ctx.get("min_length") if kind == "string_too_short" else ctx.get("max_length")
        unit = "character" if bound == 1 else "characters"
        return f"must be {'at least' if kind == 'string_too_short' else 'at most'} {bound} {unit} long"
    if kind in ("too_short", "too_long"):
        bound = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        unit = "entry" if bound == 1 else "entries"
        return f"must have {'at least' if kind == 'too_short' else 'at most'} {bound} {unit}"
    if kind == "missing":
        return "missing: this key is required here"
    return str(error["msg"]).removeprefix("Value error, ")


def _not_a_choice(value: Any, expected: str) -> str:
    choices = _QUOTED.findall(expected)
    message = f"{shown(value)} is not one of {expected}"
    meant = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6) if isinstance(value, str) else []
    return f"{message}; did you mean {meant[0]!r}?" if meant else message


def _described(value: Any, expected: str) -> str:
    if not isinstance(value, str):
        return shown(value)
    if "number" in expected:
        return f"the text {shown(value)} (write numbers without quotes)"
    if expected == KINDS["bool_type"]:
        return f"the text {shown(value)} (write true or false without quotes)"
    return f"the text {shown(value)}"


def shown(value: Any) -> str:
    """A value as the operator wrote it in TOML, cut short: 'text', 5, true, a table, a list."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Path):
        value = str(value)
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 4]}...{text[-1]}"
