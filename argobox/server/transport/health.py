"""`GET /healthz` on the HTTP daemon: does it answer, and can its store be read? For container and service health
checks (the image's HEALTHCHECK asks it every few seconds).

No token is needed and nothing is audited: a probe that needed a token would have to hold one, and a refused probe
would add an `agent_refused` record to the trail every time it ran. The answer names no agent, request, path or
configuration detail; why the store failed goes to the daemon's log only.
"""

from __future__ import annotations

import logging

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from argobox.server.store import Store, StoreError

logger = logging.getLogger("argobox")

HEALTH_PATH = "/healthz"
HEALTH_TIMEOUT_SECONDS = 5.0
"""A store read slower than this counts as unhealthy (a locked store waits at most `busy_timeout_ms` anyway)."""


def health_route(store: Store, *, timeout: float = HEALTH_TIMEOUT_SECONDS) -> Route:
    """The `/healthz` route: 200 `{"status": "ok"}` once a one-row read of the store answers, else 503."""

    async def health(_: Request) -> Response:
        try:
            with anyio.fail_after(timeout):
                await store.list_requests(limit=1)
        except StoreError as exc:
            logger.warning("health check: %s", exc)
            return _unavailable()
        except TimeoutError:
            logger.warning("health check: the store did not answer within %g s", timeout)
            return _unavailable()
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    return Route(HEALTH_PATH, endpoint=health, methods=["GET"])


def _unavailable() -> Response:
    return JSONResponse(
        {"status": "unavailable", "reason": "the store cannot be read; the daemon's log says why"},
        status_code=503,
        headers={"Cache-Control": "no-store"},
    )
