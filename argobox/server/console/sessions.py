"""Console sessions, kept on the server: the cookie holds only a random id, so signing out (or an idle timeout, or a
restart) ends a session for good, and an old cookie no longer works.

Each session remembers the operator, the hash of the token it signed in with (checked against the configuration in
force on every request, see `auth.authorize`), its CSRF token, and one-shot messages for the next page.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_BYTES = 32
MAX_SESSIONS = 1000
MAX_AGE_SECONDS = 24 * 3600
"""A session ends this long after sign-in even when in use."""


@dataclass(slots=True)
class Session:
    operator: str
    token_sha256: str
    csrf: str
    created: float
    last_seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    """(kind, message) pairs shown once on the next page: kind is ok, stale or error."""

    def flash(self, kind: str, message: str) -> None:
        self.flashes.append((kind, message))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogatepass")).hexdigest()


class Sessions:
    """In-memory sessions by the SHA-256 of their cookie value; at most `MAX_SESSIONS` (the oldest go first)."""

    def __init__(self, clock: Callable[[], float], *, idle_seconds: float) -> None:
        self._clock = clock
        self._idle = idle_seconds
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    @property
    def idle_seconds(self) -> float:
        return self._idle

    def create(self, operator: str, token_sha256: str) -> tuple[str, Session]:
        """A new session; returns the cookie value (shown to the browser only) and the session."""
        cookie = secrets.token_urlsafe(SESSION_BYTES)
        now = self._clock()
        session = Session(
            operator=operator,
            token_sha256=token_sha256,
            csrf=secrets.token_urlsafe(SESSION_BYTES),
            created=now,
            last_seen=now,
        )
        self._sessions[_key(cookie)] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return cookie, session

    def get(self, cookie: str | None, *, touch: bool) -> Session | None:
        """The live session of `cookie`, or None. `touch` counts the request as activity (live polls do not)."""
        if not cookie:
            return None
        key = _key(cookie)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self._idle or now - session.created > MAX_AGE_SECONDS:
            del self._sessions[key]
            return None
        if touch:
            session.last_seen = now
        return session

    def end(self, cookie: str | None) -> Session | None:
        """End the session of `cookie` (sign out); returns it, if it was live."""
        return self._sessions.pop(_key(cookie), None) if cookie else None

    def __len__(self) -> int:
        return len(self._sessions)
