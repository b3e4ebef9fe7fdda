"""The one check of an http:// or https:// URL in the configuration (Home Assistant's `url`, the console's
`public_url`): what each section then asks of its parts is its own."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def http_url(url: str, example: str) -> SplitResult:
    """`url` split, when it is an http:// or https:// URL with a host and a valid port; else ValueError, naming
    `example` as a URL that would do."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"{url!r} is not a URL; expected e.g. {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} must be an http:// or https:// URL with a host, e.g. {example}")
    return parts
