"""A `HomeAutomation` backed by a real Home Assistant through the `homeassistant-api` client (6.x, REST API).

The client is synchronous, so every call runs in a worker thread. Every failure leaves this module as an
`AdapterError` whose message names the entity or the service and the next step; the token never appears in one.

Service calls go through `Client.trigger_service` only (calling through a `Domain` object raises after the service
ran), are made exactly once and are never retried: after a timeout or a broken connection it is not known whether
the service ran, and the message says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar, cast

import anyio.to_thread
import niquests
from homeassistant_api import Client, State
from homeassistant_api import errors as ha_errors

from argobox.adapters.base import (
    AdapterError,
    BackendRejected,
    BackendUnavailable,
    EntityDetail,
    EntitySummary,
    ServiceCallResult,
    ServiceSummary,
    TargetState,
    bounded_attributes,
    no_entity,
    states_by_id,
)

T = TypeVar("T")

_MAX_REASON_CHARS = 200


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _domain(entity_id: str) -> str:
    return entity_id.partition(".")[0]


def _name(state: State) -> str | None:
    name = state.attributes.get("friendly_name")
    return str(name) if name is not None else None


def _summary(state: State) -> EntitySummary:
    return EntitySummary(
        entity_id=state.entity_id,
        name=_name(state),
        state=state.state,
        domain=_domain(state.entity_id),
        last_changed=_iso(state.last_changed),
    )


def _detail(state: State) -> EntityDetail:
    return EntityDetail(
        entity_id=state.entity_id,
        name=_name(state),
        state=state.state,
        domain=_domain(state.entity_id),
        last_changed=_iso(state.last_changed),
        last_updated=_iso(state.last_updated),
        attributes=bounded_attributes(state.attributes),
    )


def _json_object(value: object) -> dict[str, Any]:
    """`value` where Home Assistant answered a JSON object, else an empty one (missing, null or another shape)."""
    return cast("dict[str, Any]", value) if isinstance(value, dict) else {}


def _services(raw: Any) -> list[ServiceSummary]:
    """`GET /api/services` (a list of {domain, services: {name: {name, description, fields}}}) as summaries."""
    if not isinstance(raw, list):
        raise TypeError("expected a list of domains")
    out: list[ServiceSummary] = []
    for entry in map(_json_object, cast("list[object]", raw)):
        domain, services = str(entry["domain"]), _json_object(entry.get("services"))
        for service, raw_spec in sorted(services.items()):
            spec = _json_object(raw_spec)
            out.append(
                ServiceSummary(
                    domain=domain,
                    service=str(service),
                    name=str(spec["name"]) if spec.get("name") else None,
                    description=str(spec["description"]) if spec.get("description") else None,
                    fields=sorted(str(f) for f in _json_object(spec.get("fields"))),
                )
            )
    return sorted(out, key=lambda s: (s.domain, s.service))


class HomeAssistant:
    """`HomeAutomation` over the Home Assistant at `url` (e.g. ``http://homeassistant.local:8123``).

    `token` is the long-lived access token, read by the caller from the environment variable `token_env`
    (named in messages, never the value). Without a token every call fails with a message that says where to set it.
    """

    def __init__(self, url: str, token: str | None, *, token_env: str, timeout: float = 10.0) -> None:
        self._url = url.rstrip("/").removesuffix("/api")
        self._token = token or None
        self._token_env = token_env
        self._timeout = timeout
        self._client: Client | None = None
        self._lock = threading.Lock()

    # Reads ----------------------------------------------------------------------------------------------------

    async def describe(self) -> str:
        config = await self._run("report its configuration", lambda c: c.get_config())
        return f"Home Assistant {config.get('version', '?')} at {self._url}"

    async def list_entities(self) -> list[EntitySummary]:
        states = await self._run("list entities", lambda c: c.get_states())
        return sorted((_summary(s) for s in states), key=lambda e: e.entity_id)

    async def get_state(self, entity_id: str) -> EntityDetail:
        return _detail(await self._run(f"read {entity_id!r}", lambda c: self._state(c, entity_id)))

    async def target_states(self, entity_ids: Sequence[str]) -> list[TargetState]:
        return await self._run("read the target entities", lambda c: self._targets(c, entity_ids, missing_ok=True))

    async def list_services(self) -> list[ServiceSummary]:
        return await self._run("list services", lambda c: _services(c.request("services")))

    # The one mutation -----------------------------------------------------------------------------------------

    async def call_service(
        self, domain: str, service: str, entity_ids: Sequence[str], data: Mapping[str, Any]
    ) -> ServiceCallResult:
        what = f"{domain}.{service}"

        def call(client: Client) -> ServiceCallResult:
            with self._errors(f"read the targets of {what}"):
                before = self._targets(client, entity_ids, missing_ok=False)
            try:
                with self._errors(what, sent=True):
                    # Exactly once: no retry here, and the session retries nothing (retries=0).
                    client.trigger_service(domain, service, entity_id=list(entity_ids), **dict(data))
            except AdapterError as exc:
                exc.detail = {"before": states_by_id(before)}
                raise
            with self._errors(f"read the targets after {what}"):
                after = self._targets(client, entity_ids, missing_ok=True)
            return ServiceCallResult(
                domain=domain, service=service, entity_ids=list(entity_ids), before=before, after=after
            )

        return await anyio.to_thread.run_sync(lambda: call(self._get_client()))

    async def notify(self, service: str, *, title: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        domain, _, name = service.partition(".")
        extra = {"data": dict(data)} if data is not None else {}

        def call(client: Client) -> None:
            client.trigger_service(domain, name, title=title, message=message, **extra)

        await self._run(f"send a notification through {service}", call)

    async def aclose(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            await anyio.to_thread.run_sync(lambda: client.__exit__(None, None, None))

    # Plumbing -------------------------------------------------------------------------------------------------

    @staticmethod
    def _state(client: Client, entity_id: str) -> State:
        try:
            return client.get_state(entity_id=entity_id)
        except ha_errors.EndpointNotFoundError:
            raise no_entity(entity_id) from None

    def _targets(self, client: Client, entity_ids: Sequence[str], *, missing_ok: bool) -> list[TargetState]:
        out: list[TargetState] = []
        for entity_id in entity_ids:
            try:
                state: str | None = self._state(client, entity_id).state
            except AdapterError:
                if not missing_ok:
                    raise
                state = None
            out.append(TargetState(entity_id=entity_id, state=state))
        return out

    async def _run(self, what: str, fn: Callable[[Client], T]) -> T:
        def call() -> T:
            with self._errors(what):
                return fn(self._get_client())

        return await anyio.to_thread.run_sync(call)

    def _get_client(self) -> Client:
        if self._token is None:
            raise BackendUnavailable(
                f"No Home Assistant token: the operator must set {self._token_env} (a long-lived access token) "
                "in the environment of the argobox process."
            )
        with self._lock:
            if self._client is None:
                # retries=0: a request is sent once; nothing is ever repeated behind ArgoBox's back.
                self._client = Client(
                    f"{self._url}/api",
                    self._token,
                    session=niquests.Session(retries=0),
                    global_request_kwargs={"timeout": self._timeout},
                )
            return self._client

    def _short(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "***")
        line = next(iter(text.strip().splitlines()), "")
        return line if len(line) <= _MAX_REASON_CHARS else line[: _MAX_REASON_CHARS - 1] + "…"

    @contextmanager
    def _errors(self, what: str, *, sent: bool = False) -> Generator[None]:
        """Translate client and transport exceptions. `sent`: the request may have reached Home Assistant and
        changed something, so a failure without an answer leaves the outcome unknown."""
        unknown = " It may or may not have run; check the entity states before asking again." if sent else ""
        try:
            yield
        except AdapterError:
            raise
        except ha_errors.RequestTimeoutError:  # a RequestError subclass: first
            raise BackendUnavailable(
                f"Home Assistant at {self._url} did not answer {what} within {self._timeout:g} s.{unknown}"
            ) from None
        except ha_errors.UnauthorizedError:
            raise BackendRejected(
                f"Home Assistant at {self._url} refused the token in {self._token_env} (HTTP 401); the operator must "
                "set a valid long-lived access token."
            ) from None
        except ha_errors.RequestError:
            raise BackendRejected(
                f"Home Assistant rejected {what} (HTTP 400 Bad Request): the service or its data is not valid; "
                "check the service and its fields with ha_list_services, and the data you sent."
            ) from None
        except ha_errors.EndpointNotFoundError:
            raise BackendRejected(f"Home Assistant at {self._url} has nothing to {what} (HTTP 404).") from None
        except ha_errors.InternalServerError:
            raise BackendRejected(f"Home Assistant failed to {what} (HTTP 5xx); its log says why.{unknown}") from None
        except (ha_errors.HomeassistantAPIError, TypeError, ValueError, KeyError) as exc:
            # MalformedDataError, UnexpectedStatusCodeError, an answer of an unexpected shape...
            raise BackendRejected(
                f"Home Assistant gave an unexpected answer to {what} ({type(exc).__name__}).{unknown}"
            ) from None
        except OSError as exc:  # niquests.ConnectionError and every other transport error are OSErrors
            refused = _is_refused(exc)
            reason = "connection refused" if refused else self._short(str(exc)) or type(exc).__name__
            raise BackendUnavailable(
                f"Home Assistant at {self._url} did not answer: {reason}; check that it is running and that "
                f"[homeassistant] url is right.{'' if refused else unknown}"
            ) from None


def _is_refused(exc: BaseException, depth: int = 0) -> bool:
    """Whether a ConnectionRefusedError is somewhere inside `exc` (then the request never left)."""
    if isinstance(exc, ConnectionRefusedError) or "Connection refused" in str(exc):
        return True
    if depth > 6:
        return False
    nested = [a for a in exc.args if isinstance(a, BaseException)]
    return any(_is_refused(inner, depth + 1) for inner in (*nested, exc.__cause__, exc.__context__) if inner)
