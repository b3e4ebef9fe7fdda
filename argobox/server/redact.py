"""One redaction function for everything that leaves ArgoBox: results, the audit trail, logs and CLI output.

Three things are removed: configured secret values wherever they appear (tokens read from the environment),
the values of keys that look secret (`password`, `token`, `api_key`, ...), and credentials embedded in URLs.
In text, a credential is found by what its name says, wherever it stands: a query parameter or `name=value`, a
header (`X-Api-Key: value`, at the start of a line or in the middle of one), a quoted pair of JSON or of a Python
repr (`{"api_key": "value"}`), and the password of a URL (`redis://:value@host`). Every pattern is anchored on a
literal or on the start of a word, so a long log line scans in linear time.
What passes is also made valid text: a lone surrogate (which JSON can spell as `"\ud800"` but no UTF-8 can carry)
becomes U+FFFD, so that nothing an agent sends can stop a write to the store, a log line or an answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, cast

from argobox.adapters.base import REDACTED, replace_secrets, secret_fragments

# The words that name a secret, not a secret:
_SECRET_WORDS = r"pass(?:word|wd|phrase)?|secret|token|api[_-]?key|auth|credential|private[_-]?key|sig(?:nature)?\b"  # noqa: S105
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
_URL_CREDENTIALS = re.compile(r"://(?P<user>[^/\s:@]*):(?P<password>[^/\s@]+)@")
"""`user:password@` (the user may be empty) right after a `://`; anchored on the `://` so that long log lines scan
in linear time."""
_NAME_VALUE = re.compile(r"(?<![\w.-])(?P<name>[\w.-]{1,128})=(?P<value>[^&#\s\"']+)")
"""`name=value` in a URL query or in text. Names start only where a word starts: linear in the text's length."""
_HEADER = re.compile(
    r"(?m)(?:^|(?<=\\n)|(?<=\\r))(?P<name>[ \t]*[\w.-]{1,128}[ \t]*:[ \t]*)(?P<value>\S(?:[^\r\n\\]|\\(?![nr]))*)"
)
"""A header line `X-Api-Key: value`: the whole value goes when the name is a credential's. A line may also start
after an escaped line break (`\\n` in text quoted with repr or JSON), and its value then ends at the next one."""
_INLINE_NAME = re.compile(r"(?<![\w.-])(?P<name>[\w.-]{1,128})[ \t]*:[ \t]*")
"""A header's name in the middle of a line (`... X-Api-Key: value ...`, `-H "Authorization: Bearer value"`)."""
_INLINE_VALUE = re.compile(r"(?:(?i:bearer|basic|digest|token)[ \t]+)?(?:[^\s\"',;\\]|\\(?![nr]))+")
"""Its value: up to the next space, quote, comma, semicolon or escaped line break (`\\n` in quoted text), with its
scheme."""
_QUOTED_PAIR = re.compile(
    r"(?P<quote>\\?[\"'])(?P<name>[\w.-]{1,128})(?P=quote)\s*:\s*"
    r"(?P<value>\"(?:[^\"\\\r\n]|\\.)*\"|'(?:[^'\\\r\n]|\\.)*'|\\\"(?:[^\"\\\r\n]|\\[^\"])*\\\"|[^\s,;}\]\"'\\]+)"
)
"""A quoted name and its value in JSON (`"api_key": "value"`), a Python repr (`'token': 'value'`) or JSON inside a
JSON string (`\\"token\\": \\"value\\"`); the value is a quoted string or a bare word (a number)."""
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def valid_text(value: str) -> str:
    """`value` with every lone surrogate replaced by U+FFFD (the replacement character)."""
    return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)


def credential_name(name: str) -> bool:
    """Whether a query parameter or header called `name` carries a credential (see _CREDENTIAL_WORDS)."""
    return any(word.lower() in _CREDENTIAL_WORDS for word in _NAME_WORDS.findall(name))


def _credential_value(match: re.Match[str]) -> str:
    if not credential_name(match["name"]):
        return match[0]
    return f"{match[0][: match.start('value') - match.start()]}{REDACTED}"


def _quoted_value(match: re.Match[str]) -> str:
    """The pair with its value redacted, its quotes kept (an empty string stays empty: it hides nothing)."""
    value = match["value"]
    quote = next(
        (q for q in ('\\"', '"', "'") if value.startswith(q) and value.endswith(q) and len(value) >= 2 * len(q)), ""
    )
    if not credential_name(match["name"]) or (quote and value == quote * 2):
        return match[0]
    return f"{match[0][: match.start('value') - match.start()]}{quote}{REDACTED}{quote}"


def _inline_headers(text: str) -> str:
    """`text` with the value of every header whose name is a credential's redacted, wherever it stands. Only a
    credential's value is consumed, so a name inside another value (`status: X-Api-Key: v`) is still found; each
    character is read by at most one value scan."""
    parts: list[str] = []
    last = 0
    for match in _INLINE_NAME.finditer(text):
        if match.start() < last or not credential_name(match["name"]):
            continue
        value = _INLINE_VALUE.match(text, match.end())
        if value is not None and _prose(match["name"], value.group()):
            continue
        if value is not None:
            parts += [text[last : match.end()], REDACTED]
            last = value.end()
    return "".join(parts) + text[last:] if parts else text


_HEADER_LIKE = re.compile(r"[-_.]|[a-z][A-Z]|^[A-Z]")
_PLAIN_WORD = re.compile(r"[a-z]{1,12}[.,;]?")


def _prose(name: str, value: str) -> bool:
    """Whether `name: value` in the middle of a line reads as a sentence ("requires a token: set ...", "signature:
    the checkpoint ...") rather than a header: a lower-case word for a name and a plain lower-case word after it.
    A name spelt as a header or an identifier (`X-Api-Key`, `api_key`, `apiKey`, `Authorization`) is always taken
    for one, and so is any value with a digit, a capital or a symbol in it."""
    return not _HEADER_LIKE.search(name) and bool(_PLAIN_WORD.fullmatch(value))


@lru_cache(maxsize=4096)
def secret_key(key: str) -> bool:
    """Whether a mapping key names a value that must never be shown."""
    return bool(_SECRET_KEY.search(key))


def _secret_entry(key: str, value: Any) -> bool:
    """Whether a mapping's `value` under `key` is hidden: any value under a secret's key, and a text under a name
    that says credential (`jwt`, `pwd`, `appkey`), as the same pair written in text would be."""
    if value in (None, ""):
        return False
    return secret_key(key) or (isinstance(value, str) and credential_name(key))


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
        value = replace_secrets(valid_text(value), self._secrets)
        if "@" in value and "://" in value:
            value = _URL_CREDENTIALS.sub(lambda m: f"://{m['user']}:{REDACTED}@", value)
        if "=" in value:
            value = _NAME_VALUE.sub(_credential_value, value)
        if ":" in value:
            value = _QUOTED_PAIR.sub(_quoted_value, value)
            value = _HEADER.sub(_credential_value, value)
            value = _inline_headers(value)
        if " " in value or "\t" in value:
            value = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
        return value

    def __call__(self, value: Any) -> Any:
        """A redacted copy of `value` (str, list, tuple, dict or scalar)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                self.text(str(k)): (REDACTED if _secret_entry(str(k), v) else self(v))
                for k, v in cast("dict[object, Any]", value).items()
            }
        if isinstance(value, list | tuple):
            return [self(v) for v in cast("Sequence[Any]", value)]
        return value

    def strings(self, value: Any) -> Any:
        """A copy of `value` with every string in it, keys included, passed through `text`. Unlike `__call__` it
        judges no key by its name: for output a view has already shaped (where `has_token: true` is no secret)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.strings(v) for k, v in cast("dict[object, Any]", value).items()}
        if isinstance(value, list | tuple):
            return [self.strings(v) for v in cast("Sequence[Any]", value)]
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
