"""Agent and operator tokens: the one constant-time check, fresh tokens, and writing a token's hash into the config.

A token is a bearer secret; only its SHA-256 (hex) is ever stored, in `[agents.NAME] token_sha256` or in the
`token_sha256` of an `[[operators]]` entry. Tokens are never logged or audited.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table
from tomlkit.toml_document import TOMLDocument

from argobox.server.config.model import ConfigError, parse_config

TOKEN_BYTES = 32
_DIGEST_LENGTH = 64


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str, expected_sha256: str) -> bool:
    """Whether `token` hashes to `expected_sha256`, compared in constant time."""
    return hmac.compare_digest(token_sha256(token), expected_sha256)


def agent_for_token(token: str, hashes: Mapping[str, str | None]) -> str | None:
    """The agent whose configured hash `token` matches, or None.

    Every configured hash is compared (no early exit), each in constant time, so the answer's timing says nothing
    about which agent, if any, came close. Two agents sharing one hash is refused at config load, so at most one
    can match.
    """
    digest = token_sha256(token)
    found: str | None = None
    for agent, expected in hashes.items():
        if expected is not None and hmac.compare_digest(digest, expected) and found is None:
            found = agent
    return found


def new_token() -> str:
    """A fresh random token: 256 bits, URL-safe, usable as an HTTP header value."""
    return secrets.token_urlsafe(TOKEN_BYTES)


class TokenWriteError(Exception):
    """The config file could not be edited safely; it was left unchanged."""


_DIGEST = re.compile(r"[0-9a-f]{64}")


def write_token_hash(path: Path, agent: str, digest: str) -> None:
    """Set `token_sha256 = "<digest>"` in the `[agents.<agent>]` table of the config file at `path`, in place.

    Raises `TokenWriteError`, leaving the file as it was, when the agent has no table of its own to write into (it
    is an inline table, or only implied by `[[agents.<agent>.rules]]`), or when the edit is not safe (see `_write`).
    """

    def table(document: TOMLDocument) -> Table:
        agents = _mapping(document).get("agents")
        entry = _mapping(agents).get(agent) if isinstance(agents, Table) else None
        if entry is None:
            raise TokenWriteError(f"{path}: there is no [agents.{agent}] table; add the agent first")
        if not isinstance(entry, Table) or entry.is_super_table():
            raise TokenWriteError(
                f"{path}: [agents.{agent}] is not written as its own table header (for example it is an inline "
                f"table or only implied by [[agents.{agent}.rules]]); add a line `[agents.{agent}]` and run this "
                "again, or paste the token_sha256 line by hand"
            )
        return entry

    def expected(before: dict[str, Any]) -> dict[str, Any]:
        agents = dict(before["agents"])
        agents[agent] = {**agents[agent], "token_sha256": digest}
        return {**before, "agents": agents}

    _write(path, digest, f"[agents.{agent}] token_sha256", table, expected)


def write_operator_token_hash(path: Path, operator: str, digest: str) -> None:
    """Set `token_sha256 = "<digest>"` in the `[[operators]]` entry named `operator` of the config file at `path`.

    Raises `TokenWriteError`, leaving the file as it was, when there is no such entry, when the operators are not
    written as `[[operators]]` tables, or when the edit is not safe (see `_write`).
    """

    def table(document: TOMLDocument) -> Table:
        operators = _mapping(document).get("operators")
        if operators is not None and not isinstance(operators, AoT):
            raise TokenWriteError(
                f"{path}: the operators are not written as [[operators]] tables; paste the token_sha256 line into "
                f"the entry of {operator} by hand"
            )
        tables: list[Table] = operators.body if operators is not None else []
        entries = [entry for entry in tables if _mapping(entry).get("name") == operator]
        if len(entries) != 1:
            raise TokenWriteError(f"{path}: there is no [[operators]] entry with name = {operator!r}; add it first")
        return entries[0]

    def expected(before: dict[str, Any]) -> dict[str, Any]:
        operators = [
            {**entry, "token_sha256": digest} if entry.get("name") == operator else entry
            for entry in before["operators"]
        ]
        return {**before, "operators": operators}

    _write(path, digest, f"the token_sha256 of operator {operator}", table, expected)


def _write(
    path: Path,
    digest: str,
    what: str,
    table: Callable[[TOMLDocument], Table],
    expected: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Edit the file with tomlkit, which keeps comments and layout: set `token_sha256` in the `table` found.

    The result must parse, must validate, and must differ from the original in exactly the value `expected` says;
    only then does it replace the file (atomically, keeping its mode).
    """
    if not _DIGEST.fullmatch(digest):
        raise TokenWriteError("not a SHA-256 hex digest")
    try:
        original = path.read_bytes().decode("utf-8")  # as is: read_text would turn CRLF line ends into LF
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenWriteError(f"{path}: cannot read the configuration file: {exc}") from None
    before = _parse(original, path)
    try:
        document = tomlkit.parse(original)
    except TOMLKitError as exc:
        raise TokenWriteError(f"{path}: cannot edit this TOML safely ({exc}); paste the line by hand") from None
    table(document)["token_sha256"] = digest
    edited = document.as_string()
    if "\r\n" in original and original.count("\n") == original.count("\r\n"):
        edited = re.sub(r"(?<!\r)\n", "\r\n", edited)  # the new line ends as every other line of the file does
    if _parse(edited, path) != expected(before):
        raise TokenWriteError(f"{path}: the edit would change more than {what}; not written")
    try:
        parse_config(_parse(edited, path), path.resolve())
    except ConfigError as exc:
        raise TokenWriteError(
            f"the configuration would not be valid with this token, so it was not written: {exc}"
        ) from None
    _replace_atomically(path, edited)


def _mapping(container: TOMLDocument | Table) -> Mapping[str, object]:
    """A tomlkit table as the mapping it is (its own annotations leave keys and values untyped)."""
    return cast("Mapping[str, object]", container)


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TokenWriteError(f"{path}: invalid TOML: {exc}") from None


def _replace_atomically(path: Path, text: str) -> None:
    target = path.resolve()
    mode = target.stat().st_mode & 0o7777
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
