"""One redaction function for everything that leaves ArgoBox: results, the audit trail, logs and CLI output.

Three things are removed: configured secret values wherever they appear (tokens read from the environment),
the values of keys that look secret (`password`, `token`, `api_key`, ...), and credentials embedded in URLs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from argobox.adapters.base import REDACTED, replace_secrets, secret_fragments

_SECRET_WORDS = r"pass(?:word|wd|phrase)?|secret|token|api[_-]?key|auth|credential|private[_-]?key|sig(?:nature)?\b"
_SECRET_KEY = re.compile(
    rf"{_SECRET_WORDS}|access[_-]?(code|key)|cookie|session[_-]?id|^code$|(^|[^a-z])pin$|^app_?id$",
    re.IGNORECASE,
)
"""Mapping keys whose values are never shown (anywhere in a nested value)."""

_CREDENTIAL_WORDS = frozenset(
    {"key", "secret", "token", "sig", "signature", "auth", "authorization", "pass", "password", "passwd", "pwd"}
    | {"passphrase", "credential", "credentials", "apikey", "appid", "appkey", "accesstoken", "authtoken", "jwt"}
)
"""The words of a query parameter or header name that say it carries a credential. A name is split into words at
`_`, `-`, `.` and camel case (`client_secret`, `X-Api-Key`, `authSig`, `APIKEY`), so `monkey` or `design` is not
a credential while `apikey` is."""
_NAME_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_URL_CREDENTIALS = re.compile(r"://(?P<user>[^/\s:@]+):(?P<password>[^/\s@]+)@")
"""`user:password@` right after a `://`; anchored on the `://` so that long log lines scan in linear time."""
_NAME_VALUE = re.compile(r"(?<![\w.-])(?P<name>[\w.-]{1,128})=(?P<value>[^&#\s\"']+)")
"""`name=value` in a URL query or in text. Names start only where a word starts: linear in the text's length."""
_HEADER = re.compile(r"(?m)^(?P<name>[ \t]*[\w.-]{1,128}[ \t]*:[ \t]*)(?P<value>\S[^\r\n]*)")
"""A header line `X-Api-Key: value`: the whole value goes when the name is a credential's."""
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}")


def credential_name(name: str) -> bool:
    """Whether a query parameter or header called `name` carries a credential (see _CREDENTIAL_WORDS)."""
    return any(word.lower() in _CREDENTIAL_WORDS for word in _NAME_WORDS.findall(name))


def _credential_value(match: re.Match[str]) -> str:
    if not credential_name(match["name"]):
        return match[0]
    return f"{match[0][: match.start('value') - match.start()]}{REDACTED}"


@lru_cache(maxsize=4096)
def secret_key(key: str) -> bool:
    """Whether a mapping key names a value that must never be shown."""
    return bool(_SECRET_KEY.search(key))


_REMEMBERED_CHARS = 256
"""A text up to this long is remembered with its redacted form: the strings of results and audit events (states,
times, names, keys) recur call after call, and each costs several pattern scans."""
_REMEMBERED_TEXTS = 8192
"""At most this many remembered texts: past it, the memory starts afresh."""


class Redactor:
    """Replaces secrets in strings and nested JSON-like values; configured with the secret values in use."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = secret_fragments(secrets)
        self._remembered: dict[str, str] = {}

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values (and lines of multi-line values) this redactor removes, longest first."""
        return self._secrets

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor([*self._secrets, *secrets])

    def text(self, value: str) -> str:
        if len(value) > _REMEMBERED_CHARS:
            return self._text(value)
        redacted = self._remembered.get(value)
        if redacted is None:
            if len(self._remembered) >= _REMEMBERED_TEXTS:
                self._remembered.clear()
            redacted = self._remembered[value] = self._text(value)
        return redacted

    def _text(self, value: str) -> str:
        value = replace_secrets(value, self._secrets)
        if "@" in value and "://" in value:
            value = _URL_CREDENTIALS.sub(lambda m: f"://{m['user']}:{REDACTED}@", value)
        if "=" in value:
            value = _NAME_VALUE.sub(_credential_value, value)
        if ":" in value:
            value = _HEADER.sub(_credential_value, value)
        if " " in value or "\t" in value:
            value = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
        return value

    def __call__(self, value: Any) -> Any:
        """A redacted copy of `value` (str, list, tuple, dict or scalar)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                str(k): (REDACTED if secret_key(str(k)) and v not in (None, "") else self(v))
                for k, v in value.items()  # pyright: ignore[reportUnknownVariableType]
            }
        if isinstance(value, list | tuple):
            return [self(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
        return value


class RedactingFormatter(logging.Formatter):
    """A log formatter whose every line (message, arguments and traceback) passes through the redactor."""

    def __init__(self, redactor: Redactor, fmt: str) -> None:
        super().__init__(fmt)
        self._redact = redactor

    def use(self, redactor: Redactor) -> None:
        """Redact with `redactor` from now on (once the configuration names more secrets)."""
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact.text(super().format(record))
