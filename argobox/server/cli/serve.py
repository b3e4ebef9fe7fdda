"""`argobox serve`: the agent-facing MCP server, over stdio for one agent or over HTTP for every agent."""

from __future__ import annotations

import argparse
import gc
import os
import time
from typing import TYPE_CHECKING

import anyio

from argobox.server.app import build_redactor, open_app, open_store
from argobox.server.cli.common import AGENT_TOKEN_ENV, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, AddParser, Cli, CommandError
from argobox.server.config.model import Config
from argobox.server.config.tokens import token_matches
from argobox.server.mediation.notify import notify_forever
from argobox.server.store import Event
from argobox.server.transport.listen import DEFAULT_LISTEN

if TYPE_CHECKING:
    from argobox.server.transport.agent import Background


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    serve = add(
        "serve",
        parents=[common],
        help="run the agent-facing MCP server (stdio, or HTTP with --http)",
        description="Run the MCP server an agent connects to: over stdio for the one agent named by --agent "
        f"(proven by ${AGENT_TOKEN_ENV} when it has a token_sha256), or over streamable HTTP for every agent, "
        "each by its bearer token. With a [console] section, --http also serves the web operator console, on a "
        "listener of its own ([console] listen).",
    )
    serve.add_argument("--agent", metavar="NAME", help="stdio: the configured agent this server serves")
    serve.add_argument(
        "--http",
        nargs="?",
        const=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"serve every agent over streamable HTTP at http://HOST:PORT/mcp, each by its bearer "
        f"token (default {DEFAULT_LISTEN})",
    )
    serve.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="HTTP: allow binding to a non-loopback address (no TLS: put a TLS proxy in front)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="HTTP: another Host header value to accept (DNS-rebinding protection); repeatable",
    )
    serve.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long to wait for calls in flight (HTTP: before ending streams)",
    )
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace, cli: Cli) -> int:
    if args.http is not None:
        if args.agent:
            raise CommandError("--http serves every agent, each by its bearer token; drop --agent", EXIT_USAGE)
        return anyio.run(_serve_http, args, cli.load(args))
    if not args.agent:
        raise CommandError("serve needs --agent NAME (stdio) or --http [HOST:PORT]", EXIT_USAGE)
    return anyio.run(_serve_stdio, args.agent, cli.load(args), max(0.0, args.drain_timeout))


async def _serve_stdio(agent: str, config: Config, drain_seconds: float) -> int:
    from argobox.server.transport.agent import serve_stdio

    refusal = identity_refusal(config, agent)
    if refusal is not None:
        async with open_store(config, clock=time.time, redactor=build_redactor(config)) as store:
            await store.audit([Event(event="agent_refused", actor=f"agent:{agent[:64]}", detail={"reason": refusal})])
        raise CommandError(refusal, EXIT_REFUSED)
    async with open_app(config) as app:
        await app.store.audit([Event(event="agent_connected", actor=f"agent:{agent}", detail={"transport": "stdio"})])
        token = os.environ.get(AGENT_TOKEN_ENV) or None
        settle_heap()
        await serve_stdio(app, agent, token, background=[notify_forever], drain_seconds=drain_seconds)
    return EXIT_OK


async def _serve_http(args: argparse.Namespace, config: Config) -> int:
    from argobox.server.transport.http import serve_http
    from argobox.server.transport.phone_listener import listen_forever

    if config.console is not None:
        from argobox.server.console.serve import shared_listener

        clash = shared_listener(args.http, config.console.listen)
        if clash is not None:  # refused before either listener is bound
            raise CommandError(clash, EXIT_USAGE)
    async with open_app(config) as app:
        background: list[Background] = [notify_forever, listen_forever]  # the phone's buttons
        if config.console is not None:  # the console on a listener of its own, never the agents' one
            from argobox.server.console.serve import prepare_console

            background.append(prepare_console(app, None, allow_non_loopback=args.allow_non_loopback).serve)
        settle_heap()
        await serve_http(
            app,
            args.http,
            allow_non_loopback=args.allow_non_loopback,
            allowed_hosts=args.allowed_host,
            drain_seconds=max(0.0, args.drain_timeout),
            background=background,
        )
    return EXIT_OK


def settle_heap() -> None:
    """Leave what starting up made (modules, schemas, the configuration: hundreds of thousands of objects) out of
    the garbage collector's full passes, which would otherwise walk all of it again and again while serving, each
    pass stalling a call for tens of milliseconds on a small machine. No collection first: it would walk all of it
    once more before the first answer (the cold start), to free the little garbage that starting up leaves."""
    gc.freeze()


def identity_refusal(config: Config, agent: str) -> str | None:
    """Why `agent` may not be served, or None. The identity is fixed here, at launch, and never by the client."""
    if agent not in config.agents:
        known = ", ".join(sorted(config.agents)) or "none"
        return f"unknown agent {agent[:64]!r} (configured agents: {known})"
    expected = config.agents[agent].token_sha256
    if expected is None:
        return None
    token = os.environ.get(AGENT_TOKEN_ENV, "")
    if not token:
        return f"agent {agent!r} requires a token: set {AGENT_TOKEN_ENV}"
    if not token_matches(token, expected):
        return f"the token in {AGENT_TOKEN_ENV} does not match agent {agent!r}"
    return None
