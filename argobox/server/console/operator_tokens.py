"""`argobox token new --operator NAME --write`: put an operator token's hash into the `[[operators]]` entry of NAME.

The same kind of targeted text edit as for an agent's token (`argobox.server.tokens.write_token_hash`): the entry's
`token_sha256` line is replaced, or one is inserted right after its `[[operators]]` header; the result must parse,
validate, and differ from the original in exactly that operator's hash, or the file is left as it was.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, cast

from argobox.server.console import ops

_OPERATORS_HEADER = re.compile(r"^\s*\[\[\s*operators\s*\]\]\s*(#.*)?$")
_TOKEN_LINE = re.compile(r"^\s*token_sha256\s*=")


def _operators(data: dict[str, Any]) -> list[dict[str, Any]]:
    entries: Any = data.get("operators")
    if not isinstance(entries, list):
        return []
    return [cast(dict[str, Any], e) if isinstance(e, dict) else {} for e in cast(list[Any], entries)]


def _entry_index(entries: list[dict[str, Any]], operator: str, path: Path) -> int:
    names = [e.get("name") for e in entries]
    if operator not in names:
        raise ops.TokenWriteError(f"{path}: there is no [[operators]] entry with name = {operator!r}; add it first")
    return names.index(operator)


def write_operator_token_hash(path: Path, operator: str, digest: str) -> None:
    """Set `token_sha256 = "<digest>"` in the `[[operators]]` entry named `operator`. Raises `TokenWriteError`."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ops.TokenWriteError("not a SHA-256 hex digest")
    try:
        original = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ops.TokenWriteError(f"{path}: cannot read the configuration file: {exc}") from None
    before = ops.parse_toml(original, path)
    entries = _operators(before)
    index = _entry_index(entries, operator, path)
    lines = original.splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if _OPERATORS_HEADER.match(line)]
    if len(headers) != len(entries):
        raise ops.TokenWriteError(
            f"{path}: the operators are not all written as [[operators]] tables; paste the token_sha256 line into "
            f"the entry of {operator} by hand"
        )
    header = headers[index]
    end = next((i for i in range(header + 1, len(lines)) if ops.starts_table(lines[i])), len(lines))
    existing = [i for i in range(header + 1, end) if _TOKEN_LINE.match(lines[i])]
    if len(existing) > 1:
        raise ops.TokenWriteError(f"{path}: the [[operators]] entry of {operator} has more than one token_sha256 line")
    newline = "\r\n" if lines[header].endswith("\r\n") else "\n"
    new_line = f'token_sha256 = "{digest}"{newline}'
    if existing:
        lines[existing[0]] = new_line
    else:
        if not lines[header].endswith(("\n", "\r")):
            lines[header] += newline
        lines.insert(header + 1, new_line)
    edited = "".join(lines)
    after = ops.parse_toml(edited, path)
    expected = {
        **before,
        "operators": [{**entry, "token_sha256": digest} if i == index else entry for i, entry in enumerate(entries)],
    }
    if after != expected:
        raise ops.TokenWriteError(
            f"{path}: the edit would change more than the token_sha256 of {operator}; not written"
        )
    try:
        ops.parse_config(after, path.resolve())
    except ops.ConfigError as exc:
        raise ops.TokenWriteError(
            f"the configuration would not be valid with this token, so it was not written: {exc}"
        ) from None
    ops.replace_atomically(path, edited)


class OperatorTokenRefused(Exception):
    """`token new --operator` could not be done; `status` is the exit status (1 refused, 2 usage)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def operator_token_new(config: ops.Config, path: Path, operator: str, *, write: bool) -> int:
    """Print a fresh token for `operator` and its hash; with `write`, put the hash into the config file."""
    if config.operator(operator) is None:
        known = ", ".join(op.name for op in config.operators) or "none"
        raise OperatorTokenRefused(f"unknown operator {operator[:64]!r} (configured operators: {known})", 1)
    token = ops.new_token()
    digest = ops.token_sha256(token)
    print(f"token: {token}")
    use = (
        "The token is shown only this once: the operator signs in to the console with it (or a desktop MCP "
        "client sends it as Authorization: Bearer <token> to the console's /mcp)."
    )
    if write:
        try:
            write_operator_token_hash(path, operator, digest)
        except ops.TokenWriteError as exc:
            raise OperatorTokenRefused(str(exc), 2) from None
        print(
            f"argobox: wrote token_sha256 for operator {operator} into {path}; running servers pick it up within "
            f"seconds. {use}",
            file=sys.stderr,
        )
        return 0
    print(f'token_sha256 = "{digest}"')
    print(
        f"argobox: paste the token_sha256 line into the [[operators]] entry of {operator} in {path} (or run again "
        f"with --write). {use}",
        file=sys.stderr,
    )
    return 0
