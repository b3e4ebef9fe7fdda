"""Agent tokens: the one constant-time check, fresh tokens, and writing a token's hash into the config file.

A token is a bearer secret; only its SHA-256 (hex) is ever stored, in `[agents.NAME] token_sha256`. Tokens are never
logged or audited.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path

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


_TABLE_HEADER = re.compile(r"^\s*\[\s*(?P<name>[^\[\]]+?)\s*\]\s*(#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*(?P<name>[^\[\]]+?)\s*\]\]\s*(#.*)?$")
_TOKEN_LINE = re.compile(r"^\s*token_sha256\s*=")


def write_token_hash(path: Path, agent: str, digest: str) -> None:
    """Set `[agents.<agent>] token_sha256 = "<digest>"` in the config file at `path`, in place.

    A targeted text edit, because TOML has no round-trip writer in the standard library: the existing
    `token_sha256` line of the `[agents.<agent>]` table is replaced, or one is inserted right after its header.
    The result must parse, must validate, and must differ from the original in exactly that agent's hash;
    only then does it replace the file (atomically, keeping its mode). Anything else raises `TokenWriteError`
    and leaves the file as it was.
    """
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise TokenWriteError("not a SHA-256 hex digest")
    try:
        original = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenWriteError(f"{path}: cannot read the configuration file: {exc}") from None
    before = _parse(original, path)
    agents = before.get("agents")
    if not isinstance(agents, dict) or agent not in agents:
        raise TokenWriteError(f"{path}: there is no [agents.{agent}] table; add the agent first")
    lines = original.splitlines(keepends=True)
    header = _agent_table_header(lines, agent)
    if header is None:
        raise TokenWriteError(
            f"{path}: [agents.{agent}] is not written as its own table header (for example it is an inline table "
            f"or only implied by [[agents.{agent}.rules]]); add a line `[agents.{agent}]` and run this again, "
            f"or paste the token_sha256 line by hand"
        )
    end = next((i for i in range(header + 1, len(lines)) if _starts_table(lines[i])), len(lines))
    existing = [i for i in range(header + 1, end) if _TOKEN_LINE.match(lines[i])]
    newline = "\r\n" if lines[header].endswith("\r\n") else "\n"
    new_line = f'token_sha256 = "{digest}"{newline}'
    if len(existing) > 1:
        raise TokenWriteError(f"{path}: [agents.{agent}] has more than one token_sha256 line")
    if existing:
        lines[existing[0]] = new_line
    else:
        if not lines[header].endswith(("\n", "\r")):
            lines[header] += newline
        lines.insert(header + 1, new_line)
    edited = "".join(lines)
    after = _parse(edited, path)
    expected = _with_token(before, agent, digest)
    if after != expected:
        raise TokenWriteError(f"{path}: the edit would change more than [agents.{agent}] token_sha256; not written")
    try:
        parse_config(after, path.resolve())
    except ConfigError as exc:
        raise TokenWriteError(
            f"the configuration would not be valid with this token, so it was not written: {exc}"
        ) from None
    _replace_atomically(path, edited)


def _parse(text: str, path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TokenWriteError(f"{path}: invalid TOML: {exc}") from None


def _starts_table(line: str) -> bool:
    return bool(_TABLE_HEADER.match(line) or _ARRAY_HEADER.match(line))


def _agent_table_header(lines: list[str], agent: str) -> int | None:
    wanted = {f"agents.{agent}", f'agents."{agent}"', f"agents.'{agent}'"}
    for index, line in enumerate(lines):
        match = _TABLE_HEADER.match(line)
        if match and not _ARRAY_HEADER.match(line) and re.sub(r"\s*\.\s*", ".", match["name"]) in wanted:
            return index
    return None


def _with_token(data: dict[str, object], agent: str, digest: str) -> dict[str, object]:
    agents = dict(data["agents"])  # type: ignore[call-overload]
    agents[agent] = {**agents[agent], "token_sha256": digest}
    return {**data, "agents": agents}


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
