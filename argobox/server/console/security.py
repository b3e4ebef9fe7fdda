"""The console's web defences that do not depend on who is signed in: the Host check (DNS rebinding), the
same-origin check on state-changing requests, the response headers every page carries, and the session cookie.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from argobox.server.console import ops

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
]
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_BODY_BYTES = 64 * 1024
"""Forms are small; `/mcp` has the SDK's own limit."""


def _split_host(value: str) -> tuple[str, int | None] | None:
    """`host[:port]` (IPv6 in brackets) as (lowercase host, port); None when it is not one."""
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname.lower(), port


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Which Host headers the console answers: loopback names and the bound address on any port, and the host of
    `public_url` on its port. Anything else (a DNS-rebinding attempt, a name nobody configured) is refused."""

    any_port: frozenset[str]
    exact: frozenset[tuple[str, int | None]]
    public_origin: str | None

    @classmethod
    def build(cls, bound_host: str, public_url: str | None) -> HostPolicy:
        names = set(LOOPBACK_NAMES)
        try:
            if not ipaddress.ip_address(bound_host).is_unspecified:
                names.add(bound_host.lower())
        except ValueError:
            names.add(bound_host.lower())  # a host name given to bind to
        exact: set[tuple[str, int | None]] = set()
        origin = None
        if public_url is not None:
            parts = urlsplit(public_url)
            default = 443 if parts.scheme == "https" else 80
            host = (parts.hostname or "").lower()  # the config model requires a host
            exact |= {(host, parts.port or default)} | ({(host, None)} if parts.port in (None, default) else set())
            origin = f"{parts.scheme}://{parts.netloc.lower()}"
        return cls(any_port=frozenset(names), exact=frozenset(exact), public_origin=origin)

    def allows_host(self, host_header: str | None) -> bool:
        split = _split_host(host_header or "")
        if split is None:
            return False
        host, port = split
        return host in self.any_port or (host, port) in self.exact

    def cross_site(self, headers: Headers) -> str | None:
        """Why a state-changing request does not come from the console's own pages, or None when it does.

        `Sec-Fetch-Site` (sent by current browsers) must be `same-origin`; `Origin` must be the console's own
        origin (the Host it was sent to, or `public_url`). A request with neither is refused too.
        """
        site = headers.get("sec-fetch-site")
        origin = headers.get("origin")
        if site is None and origin is None:
            return "neither Origin nor Sec-Fetch-Site was sent"
        if site is not None and site != "same-origin":
            return f"Sec-Fetch-Site is {site[:40]!r}, not same-origin"
        if origin is not None:
            host = (headers.get("host") or "").lower()
            own: set[str] = {f"http://{host}", f"https://{host}"} | (
                {self.public_origin} if self.public_origin else set()
            )
            if origin.lower() not in own:
                return f"Origin {origin[:100]!r} is not this console"
        return None


class SecurityHeaders:
    """ASGI middleware: the Host check first, then the security headers on every response (and `no-store` on every
    response but the static files), and a bound on request bodies outside `/mcp`."""

    def __init__(self, inner: ASGIApp, policy: HostPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        if not self._policy.allows_host(Headers(scope=scope).get("host")):
            await _plain(
                send,
                421,
                "this console does not answer to that Host name; set [console] public_url to the address operators use",
            )
            return
        path: str = scope["path"]
        static = path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [*HEADERS, *([] if static else [(b"cache-control", b"no-store")])]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        if path == "/mcp":
            await self._inner(scope, receive, send_with_headers)
            return
        body = await _read_bounded(receive)
        if body is None:
            await _plain(send_with_headers, 413, f"request body over {MAX_BODY_BYTES} bytes")
            return
        await self._inner(scope, _replay(body, receive), send_with_headers)


async def _read_bounded(receive: Receive) -> bytes | None:
    """The whole request body, or None past MAX_BODY_BYTES (forms are small; nothing is streamed)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client went away; the app sees an empty remainder
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` that gives the already-read body once, then waits on the real one (for a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _plain(send: Send, status: int, text: str) -> None:
    await ops.send_body(send, status, f"{text}\n".encode(), content_type=b"text/plain; charset=utf-8")


def cookie_name(secure: bool) -> str:
    """The session cookie's name; with `__Host-` (Secure, whole host, no Domain) when served over https."""
    return "__Host-argobox_session" if secure else "argobox_session"


def session_cookie(value: str, *, secure: bool, max_age: int | None = None) -> str:
    """A Set-Cookie value: HttpOnly, SameSite=Strict, Path=/, Secure over https; `max_age=0` deletes it."""
    parts = [f"{cookie_name(secure)}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)
