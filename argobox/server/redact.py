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

REDACTED = "<redacted>"

_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|auth(orization)?|credential|private[_-]?key"
    r"|access[_-]?(code|key)|cookie|session[_-]?id|^code$|(^|[^a-z])pin$",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"://(?P<user>[^/\s:@]+):(?P<password>[^/\s@]+)@")
"""`user:password@` right after a `://`; anchored on the `://` so that long log lines scan in linear time."""
_QUERY_SECRET = re.compile(r"(?i)([?&](?:access_)?(?:token|api_key|key|password|secret|signature)=)[^&#\s]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}")
_MIN_SECRET_LENGTH = 6


@lru_cache(maxsize=4096)
def secret_key(key: str) -> bool:
    """Whether a mapping key names a value that must never be shown."""
    return bool(_SECRET_KEY.search(key))


class Redactor:
    """Replaces secrets in strings and nested JSON-like values; configured with the secret values in use."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}
        self._secrets = sorted(values, key=len, reverse=True)

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor([*self._secrets, *secrets])

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if "@" in value and "://" in value:
            value = _URL_CREDENTIALS.sub(lambda m: f"://{m['user']}:{REDACTED}@", value)
        if "=" in value:
            value = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{REDACTED}", value)
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
