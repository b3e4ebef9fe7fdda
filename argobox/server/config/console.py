"""`[console]`: where the web operator console listens, how operators reach it, and which proxies may name the client.

`argobox console` serves it, and `argobox serve --http` too (on a listener of its own) when this section is present.
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator

from argobox.server.config.urls import http_url


class ConsoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    """The web operator console (`argobox console`, and `argobox serve --http` when this section is present)."""

    listen: str = "127.0.0.1:8766"
    """HOST:PORT (IPv6 as [::1]:8766); a non-loopback address also needs --allow-non-loopback."""
    public_url: str | None = None
    """How operators reach the console, e.g. https://argobox.example.org: links in notifications; Secure cookies
    when it is https."""
    session_idle_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    trusted_proxies: list[str] = Field(default_factory=list[str], max_length=64)
    """Addresses (or networks, e.g. 10.0.0.0/24) of reverse proxies whose X-Forwarded-For names the client: the
    address sign-ins are limited and recorded by. Empty (the default): the peer's own address, whatever it sends."""

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: list[str]) -> list[str]:
        """Each as the server matches it: an address, or a network by its own address (10.0.0.1/24 is 10.0.0.0/24;
        the server would otherwise take it for a name and never match it)."""
        normal: list[str] = []
        for proxy in proxies:
            try:
                value = ipaddress.ip_network(proxy, strict=False) if "/" in proxy else ipaddress.ip_address(proxy)
            except ValueError:
                raise ValueError(
                    f"{proxy!r} is not an IP address or network; expected e.g. 127.0.0.1 or 10.0.0.0/24"
                ) from None
            normal.append(str(value))
        return normal

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        host, sep, port = listen.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        if not sep or not host or not port.isdigit() or int(port) > 65535 or (":" in host and not bracketed):
            raise ValueError(f"{listen!r} is not HOST:PORT; expected e.g. 127.0.0.1:8766 or [::1]:8766")
        return listen

    @field_validator("public_url")
    @classmethod
    def _origin_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = http_url(url, "https://argobox.example.org")
        if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
            raise ValueError(f"{url!r} must be just scheme, host and port (the console is served at the root)")
        return url.rstrip("/")
