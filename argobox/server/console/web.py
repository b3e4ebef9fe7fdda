"""The console's web application: sign-in and sign-out, the checks every request goes through, and the routes.

A request is answered in this order: the Host check and security headers (`security.SecurityHeaders`); for a
state-changing request the same-origin check; the session (a live one, whose operator ArgoBox's `authorize` still
accepts under the configuration in force, with the permission the action needs); for a state-changing request the
CSRF token. Every refusal is audited, coalesced, and none tells the browser more than it needs: `authorize` records
the ones it makes (`operator_refused`, coalesced by `App.refusals`), and the console records (`refusals.ConsoleAudit`)
only the ones made before there is an operator to authorize (no session, another site, a missing CSRF token, too
many failed sign-ins), so no refusal is recorded twice.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from argobox.server.console import auth, ops, render
from argobox.server.console.auth import Operator, SignInLimiter
from argobox.server.console.mcp_http import OperatorEndpoint
from argobox.server.console.refusals import ConsoleAudit
from argobox.server.console.security import HostPolicy, SecurityHeaders, cookie_name, session_cookie
from argobox.server.console.sessions import Session, Sessions

logger = logging.getLogger("argobox")

SIGN_IN_COOKIE = "argobox_signin"
MAX_FIELD = 1000


@dataclass(frozen=True, slots=True)
class Caller:
    """A request from a signed-in operator."""

    session: Session
    operator: Operator
    remote: str

    @property
    def claim(self) -> ops.OperatorClaim:
        """What this request shows `authorize` when it acts (a decision, a reset)."""
        return auth.session_claim(self.session.operator, self.session.token_sha256, self.remote)


Handler = Callable[[Request], Awaitable[Response]]


class Console:
    """One console: its sessions, sign-in limiter and audit writer, over one `App`."""

    def __init__(self, app: ops.App, *, bound_host: str, clock: Callable[[], float] = time.time) -> None:
        settings = app.config.console or ops.ConsoleConfig()
        self.app = app
        self.public_url = settings.public_url
        self.secure = bool(settings.public_url and settings.public_url.startswith("https://"))
        self.sessions = Sessions(clock, idle_seconds=settings.session_idle_minutes * 60)
        self.limiter = SignInLimiter(time.monotonic)
        self.audit = ConsoleAudit(app, time.monotonic)
        self.hosts = HostPolicy.build(bound_host, settings.public_url)
        self.env = render.environment()
        self.mcp = OperatorEndpoint(app, self.audit, self._mcp_security())

    def _mcp_security(self) -> TransportSecuritySettings:
        names = sorted(self.hosts.any_port)
        hosts = [f"[{n}]:*" if ":" in n else f"{n}:*" for n in names]
        hosts += [f"{h}:{p}" if p is not None else h for h, p in sorted(self.hosts.exact, key=str)]
        origins = [f"{scheme}://{h}" for scheme in ("http", "https") for h in hosts]
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
        )

    def asgi(self) -> ASGIApp:
        from argobox.server.console import pages

        routes = [
            Route("/signin", self.sign_in_form, methods=["GET"]),
            Route("/signin", self.sign_in, methods=["POST"]),
            Route("/signout", self.sign_out, methods=["POST"]),
            *pages.routes(self),
            Route("/mcp", self.mcp, methods=["GET", "POST", "DELETE"]),
            Mount("/static", StaticFiles(directory=render.STATIC), name="static"),
        ]
        return SecurityHeaders(Starlette(routes=routes), self.hosts)

    # -- rendering ------------------------------------------------------------------------------------------------

    def page(self, template: str, caller: Caller | None, status: int = 200, **context: Any) -> HTMLResponse:
        flashes = caller.session.take_flashes() if caller is not None else []
        html = self.env.get_template(template).render(
            operator=caller.operator if caller else None,
            csrf=caller.session.csrf if caller else "",
            flashes=flashes,
            version=ops.__version__,
            **{"show_request": False, **context},
        )
        return HTMLResponse(html, status_code=status)

    def refusal_page(self, caller: Caller | None, status: int, message: str) -> HTMLResponse:
        return self.page("refused.html", caller, status=status, message=message, page="refused")

    # -- who is asking --------------------------------------------------------------------------------------------

    @staticmethod
    def remote(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def _cookie(self, request: Request) -> str | None:
        return request.cookies.get(cookie_name(self.secure))

    async def caller(
        self, request: Request, need: ops.Permission, *, api: bool = False, request_id: str | None = None
    ) -> Caller | Response:
        """The signed-in operator `authorize` allows `need` (on the agent request `request_id`, if any), or the
        response that refuses the request.

        `api`: a request the page's script makes by itself (a live refresh): answered 401 rather than redirected,
        and not counted as activity for the idle timeout.
        """
        cookie = self._cookie(request)
        session = self.sessions.get(cookie, touch=not api)
        page = request.method == "GET" and not api
        if session is None:
            if cookie or not page:
                await self.audit.refused(
                    f"console:{self.remote(request)}",
                    "no live session (signed out, timed out, or never signed in)",
                    channel="console",
                    action=need.value,
                    detail={"path": request.url.path[:200], "method": request.method},
                )
            return self._to_sign_in(request, page)
        remote = self.remote(request)
        try:  # refusals are audited by `authorize`
            claim = auth.session_claim(session.operator, session.token_sha256, remote)
            operator = await auth.check(self.app, claim, need, request_id=request_id)
        except ops.Refused as exc:
            if exc.code == "viewer":
                return self.refusal_page(
                    Caller(session, _viewer(session), remote),
                    403,
                    "You are signed in as a viewer: a viewer can read everything but decide "
                    "nothing. Nothing was changed.",
                )
            self.sessions.end(cookie)
            return self._to_sign_in(request, page)
        return Caller(session=session, operator=operator, remote=remote)

    def _to_sign_in(self, request: Request, page: bool) -> Response:
        if page:
            return RedirectResponse("/signin", status_code=303)
        if request.method == "POST" and "text/html" in request.headers.get("accept", ""):  # a form, after a timeout
            return self.refusal_page(
                None,
                401,
                "Your session has ended (signed out, or idle too long), so nothing "
                "was changed. Sign in again and retry.",
            )
        return PlainTextResponse("sign in first: no live console session", status_code=401)

    async def form(
        self, request: Request, need: ops.Permission, *, request_id: str | None = None
    ) -> tuple[Caller, FormData] | Response:
        """For a state-changing request: same origin, a live session allowed `need` (on the agent request
        `request_id`, if any), and its CSRF token."""
        cross = self.hosts.cross_site(request.headers)
        if cross is not None:
            await self.audit.refused(
                f"console:{self.remote(request)}",
                f"cross-site: {cross}",
                channel="console",
                action=need.value,
                detail={"path": request.url.path[:200]},
            )
            return PlainTextResponse(f"refused: {cross}", status_code=403)
        caller = await self.caller(request, need, request_id=request_id)
        if isinstance(caller, Response):
            return caller
        form = await request.form(max_files=0, max_fields=10)
        token = form.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), caller.session.csrf.encode()):
            await self.audit.refused(
                f"operator:{caller.operator.name}",
                "the CSRF token is missing or wrong",
                channel="console",
                action=need.value,
                detail={"path": request.url.path[:200]},
            )
            return self.refusal_page(
                caller,
                403,
                "Refused: this form's security token is missing or out of date, "
                "so nothing was changed. Open the page again and retry.",
            )
        return caller, form

    # -- sign in, sign out ----------------------------------------------------------------------------------------

    def _sign_in_page(self, error: str | None, status: int = 200, operator: str = "") -> Response:
        nonce = secrets.token_urlsafe(24)
        response = self.page(
            "signin.html", None, status=status, page="signin", error=error, nonce=nonce, operator_name=operator
        )
        secure = "; Secure" if self.secure else ""
        response.headers.append(
            "set-cookie", f"{SIGN_IN_COOKIE}={nonce}; Path=/signin; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
        )
        return response

    async def sign_in_form(self, request: Request) -> Response:
        if self.sessions.get(self._cookie(request), touch=False) is not None:
            return RedirectResponse("/", status_code=303)
        return self._sign_in_page(None)

    async def sign_in(self, request: Request) -> Response:
        remote = self.remote(request)
        cross = self.hosts.cross_site(request.headers)
        if cross is not None:
            await self.audit.refused(f"console:{remote}", f"cross-site: {cross}", channel="console", action="sign_in")
            return PlainTextResponse(f"refused: {cross}", status_code=403)
        form = await request.form(max_files=0, max_fields=10)
        name, token, nonce = (str(form.get(k) or "")[:MAX_FIELD] for k in ("operator", "token", "csrf"))
        name = name.strip()
        expected = request.cookies.get(SIGN_IN_COOKIE, "")
        if not expected or not hmac.compare_digest(nonce.encode(), expected.encode()):
            await self.audit.refused(
                f"console:{remote}",
                "the sign-in form's CSRF token is missing or wrong",
                channel="console",
                action="sign_in",
                detail={"operator": name[:64]},
            )
            return self._sign_in_page("The sign-in form had expired. Please try again.", 403, name)
        wait = self.limiter.retry_after(remote)
        if wait is not None:
            await self.audit.refused(
                f"console:{remote}",
                "too many failed sign-ins",
                channel="console",
                action="sign_in",
                detail={"operator": name[:64]},
            )
            response = self._sign_in_page(
                f"Too many failed sign-ins from your address. Try again in {int(wait) + 1} seconds.", 429, name
            )
            response.headers["retry-after"] = str(int(wait) + 1)
            return response
        try:  # audited by `authorize` when refused; the limiter bounds how many a client address gets recorded
            operator = await auth.sign_in(self.app, name, token.strip(), remote)
        except ops.Refused:
            self.limiter.failed(remote)
            return self._sign_in_page(
                "Sign-in refused: unknown operator, wrong token, or an operator without a token.", 401, name
            )
        cookie, _ = self.sessions.create(operator.name, operator.token_sha256)
        await self.audit.record(
            "console_signed_in", f"operator:{operator.name}", {"remote": remote, "role": operator.role}
        )
        response = RedirectResponse("/", status_code=303)
        response.headers.append("set-cookie", session_cookie(cookie, secure=self.secure))
        response.headers.append("set-cookie", f"{SIGN_IN_COOKIE}=; Path=/signin; Max-Age=0")
        return response

    async def sign_out(self, request: Request) -> Response:
        checked = await self.form(request, ops.Permission.VIEW)
        if isinstance(checked, Response):
            return checked
        caller, _ = checked
        self.sessions.end(self._cookie(request))
        await self.audit.record(
            "console_signed_out", f"operator:{caller.operator.name}", {"remote": self.remote(request)}
        )
        response = RedirectResponse("/signin", status_code=303)
        response.headers.append("set-cookie", session_cookie("", secure=self.secure, max_age=0))
        return response


def _viewer(session: Session) -> Operator:
    return Operator(name=session.operator, role="viewer", token_sha256=session.token_sha256)
