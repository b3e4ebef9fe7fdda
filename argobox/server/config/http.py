"""`[http]`: what the HTTP daemon allows one agent and one client, so that neither can starve the others.

Read once at startup: a change needs a restart (the section is not one a reload applies).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HttpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    max_sessions_per_agent: int = Field(default=16, ge=1, le=10_000)
    """Open 2025-11-25 (`initialize`) sessions per agent; one more handshake is refused with HTTP 429."""
    session_idle_seconds: int = Field(default=1800, ge=1, le=24 * 3600)
    """A session with no request in flight (and no open stream) for this long is ended and its slot freed."""
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    """Time to send a request's headers, from the connection (or the request's first byte) on."""
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Time to send a request's body once its headers are in."""
    max_connections: int = Field(default=512, ge=1, le=100_000)
    """Open connections in total; more are answered 503 and closed."""
    max_connections_per_address: int = Field(default=64, ge=1, le=100_000)
    """Open connections from one client address; more are answered 429 and closed."""
