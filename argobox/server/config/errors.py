"""Configuration errors an operator can act on: each names the key, the line it is on, and what was expected; an
unknown key also says which key was probably meant ("did you mean 'base_url'?")."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from argobox.server.config.locate import KeyPath, key_lines, line_of
from argobox.server.config.wording import plain_message

Problem = tuple[KeyPath, str]
"""Where in the file (a key path, as pydantic reports it), and what is wrong there (starting with the path)."""

_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def key_path_text(loc: Sequence[str | int]) -> str:
    """`("agents", "openclaw", "rules", 0)` as `agents.openclaw.rules[0]`."""
    out = ""
    for part in loc:
        if part == "[key]":
            out += " (the name)"
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def text_problem(problem: str) -> Problem:
    """A problem written as `agents.openclaw.rules[0].tools: ...`, with its key path read back from the text."""
    prefix, sep, _ = problem.partition(": ")
    if not sep or " " in prefix:
        return (), problem
    parts = _PATH_PART.findall(prefix)
    if "".join(f"[{i}]" if i else f".{k}" for i, k in parts).lstrip(".") != prefix:
        return (), problem
    return tuple(int(i) if i else k for i, k in parts), problem


def validation_problems(exc: ValidationError, root: type[BaseModel]) -> list[Problem]:
    return [_validation_problem(error, root) for error in exc.errors()]


def _validation_problem(error: ErrorDetails, root: type[BaseModel]) -> Problem:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    where = tuple(p for p in loc if p != "[key]")
    if error["type"] != "extra_forbidden" and not (loc and _internal(root, loc)):
        return where, f"{key_path_text(loc)}: {plain_message(error)}"
    allowed = keys_at(root, loc[:-1])
    meant = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
    if meant:
        hint = f"; did you mean {meant[0]!r}?"
    return where, f"{key_path_text(loc)}: unknown key{hint}"


def keys_at(root: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The keys the configuration takes at `path` (a table of `root`), or [] if `path` is not a table."""
    model = _model_at(root, path)
    if model is None:
        return []
    return [name for name, field in model.model_fields.items() if not field.exclude]


def _internal(root: type[BaseModel], loc: Sequence[str | int]) -> bool:
    """Whether `loc` names a field that is no key of the file (excluded, such as `source`, set by the loader)."""
    *table, name = loc
    model = _model_at(root, table)
    field = model.model_fields.get(name) if model is not None and isinstance(name, str) else None
    return field is not None and bool(field.exclude)


def _model_at(root: type[BaseModel], path: Sequence[str | int]) -> type[BaseModel] | None:
    """The model of the table at `path` of `root`, or None if `path` is not a table."""
    kind: Any = root
    for part in path:
        kind = _unwrap(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel) and isinstance(part, str):
            field = kind.model_fields.get(part)
            kind = field.annotation if field is not None else None
        elif get_origin(kind) in (list, dict) and get_args(kind):
            kind = get_args(kind)[-1]
        else:
            return None
    kind = _unwrap(kind)
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _unwrap(kind: Any) -> Any:
    """`X` of `Annotated[X, ...]` and of `X | None`."""
    while True:
        origin = get_origin(kind)
        if origin is Annotated:
            kind = get_args(kind)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(kind) if a is not type(None)]
            if len(options) != 1:
                return kind
            kind = options[0]
        else:
            return kind


def render(source: Path, problems: Sequence[Problem], text: str | None) -> str:
    """The message of a `ConfigError`: the file, then one problem a line, in the order of the file, each with its
    line when it can be found."""
    lines = key_lines(text) if text is not None else {}
    located = [(line_of(lines, where) if where else None, problem) for where, problem in problems]
    located.sort(key=lambda item: item[0] if item[0] is not None else len(text or "") + 1)
    shown = [f"line {line}: {problem}" if line is not None else problem for line, problem in located]
    return f"{source}: invalid configuration:\n  " + "\n  ".join(shown)
