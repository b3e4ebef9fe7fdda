"""The `argobox` command: the agent server, the operator's queue and audit commands, and the demo.

Exit status: 0 done; 1 refused (no such request, not pending, expired, unknown operator or agent) or audit
verification failed; 2 bad usage or configuration; 3 the approved action ran and failed; 4 the store could not be
used.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from argobox import __version__
from argobox.server import gate
from argobox.server.app import App, build_redactor, open_app, open_store
from argobox.server.audit_cli import add_audit_actions, run_audit_action
from argobox.server.config import Config, ConfigError, load_config, resolve_config_path
from argobox.server.explain import explain, explain_text
from argobox.server.notify import flush, notify_forever
from argobox.server.redact import RedactingFormatter
from argobox.server.store import Event, Refused, RequestStatus, StoreError, iso
from argobox.server.tokens import token_matches
from argobox.server.views import (
    audit_json,
    audit_lines,
    budget_json,
    budgets_table,
    request_json,
    requests_table,
)

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_FAILED, EXIT_STORE = 0, 1, 2, 3, 4
AGENT_TOKEN_ENV = "ARGOBOX_AGENT_TOKEN"
OPERATOR_TOKEN_ENV = "ARGOBOX_OPERATOR_TOKEN"
DEFAULT_HTTP_LISTEN = "127.0.0.1:8765"


class CommandError(Exception):
    """Raised by a command to stop with a message and an exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _parser() -> argparse.ArgumentParser:
    config_help = "configuration file (default: $ARGOBOX_CONFIG, else ./argobox.toml)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    parser = argparse.ArgumentParser(prog="argobox", description=__doc__.splitlines()[0])
    parser.add_argument("--config", metavar="PATH", default=None, help=config_help)
    parser.add_argument("--version", action="version", version=f"argobox {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the agent-facing MCP server (stdio, or HTTP with --http)")
    serve.add_argument("--agent", metavar="NAME", help="stdio: the configured agent this server serves")
    serve.add_argument("--http", nargs="?", const=DEFAULT_HTTP_LISTEN, metavar="HOST:PORT",
                       help=f"serve every agent over streamable HTTP at http://HOST:PORT/mcp, each by its bearer "
                            f"token (default {DEFAULT_HTTP_LISTEN})")
    serve.add_argument("--allow-non-loopback", action="store_true",
                       help="HTTP: allow binding to a non-loopback address (no TLS: put a TLS proxy in front)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="HOST[:PORT]",
                       help="HTTP: another Host header value to accept (DNS-rebinding protection); repeatable")
    serve.add_argument("--drain-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="HTTP: on SIGTERM, how long to wait for calls in flight before ending streams")

    token = sub.add_parser("token", parents=[common], help="make agent and operator tokens")
    token_sub = token.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    token_new = token_sub.add_parser("new", parents=[common],
                                     help="print a fresh token for AGENT (or --operator NAME), and its hash")
    token_new.add_argument("agent", metavar="AGENT", nargs="?")
    token_new.add_argument("--operator", metavar="NAME", help="a token for the configured operator NAME instead")
    token_new.add_argument("--write", action="store_true",
                           help="write the token_sha256 into [agents.AGENT] (or the [[operators]] entry of NAME) "
                                "of the config file")

    operator = sub.add_parser("operator", parents=[common], help="run the operator-facing MCP server over stdio")
    operator.add_argument("--as", dest="operator", required=True, metavar="OPERATOR")

    console = sub.add_parser("console", parents=[common], help="serve the web operator console (and the operator "
                             "MCP tools at /mcp)")
    console.add_argument("--listen", metavar="HOST:PORT", help="where to listen (default: [console] listen, else "
                         "127.0.0.1:8766)")
    console.add_argument("--allow-non-loopback", action="store_true",
                         help="allow a non-loopback address (put a TLS-terminating proxy in front)")

    watch = sub.add_parser("watch", parents=[common], help="follow new requests and decisions live")
    watch.add_argument("--all", action="store_true", help="every audit event, not only requests and decisions")

    requests = sub.add_parser("requests", parents=[common], help="list requests, newest first")
    requests.add_argument("--status", choices=[s.value for s in RequestStatus])
    requests.add_argument("--agent", metavar="NAME")
    requests.add_argument("--limit", type=int, default=100)
    requests.add_argument("--json", action="store_true", help="print a JSON array")

    show = sub.add_parser("show", parents=[common], help="show one request with its timeline")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")

    approve = sub.add_parser("approve", parents=[common], help="approve a pending request and execute it")
    approve.add_argument("id")
    approve.add_argument("--as", dest="operator", required=True, metavar="OPERATOR")
    approve.add_argument("--note", default="")
    approve.add_argument("--json", action="store_true")

    deny = sub.add_parser("deny", parents=[common], help="deny a pending request")
    deny.add_argument("id")
    deny.add_argument("--as", dest="operator", required=True, metavar="OPERATOR")
    deny.add_argument("--reason", required=True)
    deny.add_argument("--json", action="store_true")

    audit = sub.add_parser("audit", parents=[common], help="print the audit trail; verify, export or prune it")
    audit.add_argument("--request", metavar="ID")
    audit.add_argument("--limit", type=int, default=None, help="only the most recent N events")
    audit.add_argument("--json", action="store_true", help="print a JSON array")
    add_audit_actions(audit, common)

    budgets = sub.add_parser("budgets", parents=[common], help="show each agent's budget use; reset a cooldown")
    budgets.add_argument("--json", action="store_true")
    budgets_sub = budgets.add_subparsers(dest="budgets_action", metavar="ACTION")
    reset = budgets_sub.add_parser("reset", parents=[common], help="clear an agent's cooldown and failure streak")
    reset.add_argument("agent")
    reset.add_argument("--as", dest="operator", metavar="OPERATOR", help="the configured operator doing it")

    demo = sub.add_parser("demo", help="run the first proof live against the simulated lab")
    demo.add_argument("--dir", metavar="DIR", help="keep the demo's config, store and lab here (default: a temp dir)")
    return parser


def _load(args: argparse.Namespace) -> Config:
    config = load_config(resolve_config_path(args.config))
    _secrets_of(config)
    return config


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


async def _serve(args: argparse.Namespace) -> int:
    if args.http is not None:
        return await _serve_http(args)
    if not args.agent:
        raise CommandError("serve needs --agent NAME (stdio) or --http [HOST:PORT]", EXIT_USAGE)
    from argobox.server.agent import serve_stdio

    config = _load(args)
    refusal = _identity_refusal(config, args.agent)
    if refusal is not None:
        redactor = build_redactor(config)
        async with open_store(config, clock=time.time, redactor=redactor) as store:
            await store.audit([Event(event="agent_refused", actor=f"agent:{args.agent[:64]}", detail={"reason": refusal})])
        raise CommandError(refusal, EXIT_REFUSED)
    async with open_app(config) as app:
        await app.store.audit([Event(event="agent_connected", actor=f"agent:{args.agent}", detail={"transport": "stdio"})])
        await serve_stdio(app, args.agent, os.environ.get(AGENT_TOKEN_ENV) or None, background=[notify_forever])
    return EXIT_OK


async def _serve_http(args: argparse.Namespace) -> int:
    from argobox.server.http import serve_http

    if args.agent:
        raise CommandError("--http serves every agent, each by its bearer token; drop --agent", EXIT_USAGE)
    config = _load(args)
    async with open_app(config) as app:
        background: list[Any] = [notify_forever]
        if config.console is not None:  # the console on a listener of its own, never the agents' one
            from argobox.server.console.serve import prepare_console

            background.append(prepare_console(app, None, allow_non_loopback=args.allow_non_loopback).serve)
        await serve_http(app, args.http, allow_non_loopback=args.allow_non_loopback, allowed_hosts=args.allowed_host,
                         drain_seconds=max(0.0, args.drain_timeout), background=background)
    return EXIT_OK


async def _console(args: argparse.Namespace) -> int:
    from argobox.server.console.serve import run_console

    await run_console(_load(args), args.listen, allow_non_loopback=args.allow_non_loopback)
    return EXIT_OK


def _token_new(args: argparse.Namespace) -> int:
    from argobox.server.tokens import TokenWriteError, new_token, token_sha256, write_token_hash

    path = resolve_config_path(args.config)
    config = load_config(path)
    if (args.agent is None) == (args.operator is None):
        raise CommandError("token new needs AGENT or --operator NAME (one of them)", EXIT_USAGE)
    if args.operator is not None:
        from argobox.server.console.operator_tokens import OperatorTokenRefused, operator_token_new

        try:
            return operator_token_new(config, path, args.operator, write=args.write)
        except OperatorTokenRefused as exc:
            raise CommandError(str(exc), exc.status) from None
    if args.agent not in config.agents:
        known = ", ".join(sorted(config.agents)) or "none"
        raise CommandError(f"unknown agent {args.agent[:64]!r} (configured agents: {known})", EXIT_REFUSED)
    token = new_token()
    digest = token_sha256(token)
    if args.write:
        try:
            write_token_hash(path, args.agent, digest)
        except TokenWriteError as exc:
            raise CommandError(f"{exc}", EXIT_USAGE) from None
        print(f"token: {token}")
        print(f"argobox: wrote token_sha256 for {args.agent} into {path}; a running daemon or stdio server picks "
              "it up within seconds. The token is shown only this once: give it to the agent's MCP client "
              "(HTTP: Authorization: Bearer <token>; stdio: ARGOBOX_AGENT_TOKEN).", file=sys.stderr)
        return EXIT_OK
    print(f"token: {token}")
    print(f'token_sha256 = "{digest}"')
    print(f"argobox: paste the token_sha256 line into [agents.{args.agent}] of {path} (or run again with --write). "
          "The token is shown only this once: give it to the agent's MCP client "
          "(HTTP: Authorization: Bearer <token>; stdio: ARGOBOX_AGENT_TOKEN).", file=sys.stderr)
    return EXIT_OK


async def _operator(args: argparse.Namespace) -> int:
    from argobox.server.operator import audit_operator_refused, build_operator_server

    config = _load(args)
    refusal = _operator_refusal(config, args.operator)
    async with open_app(config) as app:
        if refusal is not None:
            await audit_operator_refused(app, args.operator, refusal)
            raise CommandError(refusal, EXIT_REFUSED)
        server = build_operator_server(app, args.operator)
        await app.store.audit([Event(event="operator_connected", actor=f"operator:{args.operator}",
                                     detail={"transport": "stdio"})])
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(notify_forever, app)
            tasks.start_soon(_follow_config, app, f"operator server of {args.operator}")
            await server.run_stdio_async()
            tasks.cancel_scope.cancel()
    return EXIT_OK


async def _follow_config(app: App, process: str) -> None:
    """Apply configuration changes (grants, operators) while a long-lived server runs."""
    from argobox.server.reload import ConfigWatcher, Reload

    async def ignore(_: Reload) -> None:
        return None

    await ConfigWatcher(app, ignore, process=process).run()


def _operator_refusal(config: Config, operator: str) -> str | None:
    """Why `operator` may not open the operator server, or None. Agents never can."""
    if operator in config.agents:
        return f"{operator[:64]!r} is an agent; agents can never open the operator server"
    entry = config.operator(operator)
    if entry is None:
        return f"{operator[:64]!r} is not a configured operator"
    if entry.token_sha256 is None:
        return None
    return _token_refusal(entry.token_sha256, OPERATOR_TOKEN_ENV, f"operator {operator!r}")


def _token_refusal(expected: str, env: str, who: str) -> str | None:
    token = os.environ.get(env, "")
    if not token:
        return f"{who} requires a token: set {env}"
    if not token_matches(token, expected):
        return f"the token in {env} does not match {who}"
    return None


def _identity_refusal(config: Config, agent: str) -> str | None:
    """Why `agent` may not be served, or None. The identity is fixed here, at launch, and never by the client."""
    if agent not in config.agents:
        known = ", ".join(sorted(config.agents)) or "none"
        return f"unknown agent {agent[:64]!r} (configured agents: {known})"
    expected = config.agents[agent].token_sha256
    return None if expected is None else _token_refusal(expected, AGENT_TOKEN_ENV, f"agent {agent!r}")


async def _with_app(args: argparse.Namespace) -> int:
    config = _load(args)
    async with open_app(config) as app:
        await _prove_operator(app, getattr(args, "operator", None))
        return await _COMMANDS[args.command](app, args)


async def _prove_operator(app: App, operator: str | None) -> None:
    """An operator with a `token_sha256` must show ARGOBOX_OPERATOR_TOKEN for every action taken in their name."""
    entry = app.config.operator(operator) if operator else None
    if entry is None or entry.token_sha256 is None:
        return  # unknown operators are refused (and audited) by the action itself
    refusal = _token_refusal(entry.token_sha256, OPERATOR_TOKEN_ENV, f"operator {entry.name!r}")
    if refusal is not None:
        await app.store.audit([Event(event="operator_refused", actor=f"operator:{entry.name}",
                                     detail={"reason": refusal})])
        raise CommandError(refusal, EXIT_REFUSED)


async def _requests(app: App, args: argparse.Namespace) -> int:
    status = RequestStatus(args.status) if args.status else None
    records = await app.store.list_requests(status=status, agent=args.agent, limit=max(1, args.limit))
    if args.json:
        _print_json([request_json(r, app.redactor) for r in records])
    else:
        print(requests_table(records, app.redactor))
    return EXIT_OK


async def _show(app: App, args: argparse.Namespace) -> int:
    record = await app.store.get(args.id)
    if record is None:
        raise CommandError(f"no request {gate.shorten(args.id, 64)!r}", EXIT_REFUSED)
    data = await explain(app, record)
    if args.json:
        _print_json(data)
    else:
        print(app.redactor.text(explain_text(data)))
    return EXIT_OK


async def _approve(app: App, args: argparse.Namespace) -> int:
    record = await gate.approve(app, args.id, operator=args.operator, note=args.note)
    status = _print_decided(app, args, record)
    await flush(app)
    return status


async def _deny(app: App, args: argparse.Namespace) -> int:
    record = await gate.deny(app, args.id, operator=args.operator, reason=args.reason)
    status = _print_decided(app, args, record)
    await flush(app)
    return status


WATCHED = frozenset({"queued", "approved", "denied", "succeeded", "failed", "expired", "interrupted", "rate_limited",
                     "cooldown"})


async def _watch(args: argparse.Namespace) -> int:
    """Follow the audit trail: pending requests first, then every new request and decision as it happens."""
    config = _load(args)
    async with open_app(config) as app:
        pending = await app.store.list_requests(status=RequestStatus.PENDING)
        print(requests_table(pending, app.redactor) if pending else "no pending requests", flush=True)
        head = await app.store.audit_trail(limit=1)
        last = head[-1].seq if head else 0
        print("watching for new requests and decisions (Ctrl-C to stop)", file=sys.stderr, flush=True)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(notify_forever, app)
            while True:
                await app.store.expire_due()
                for event in await app.store.audit_after(last):
                    last = event.seq
                    if args.all or event.event in WATCHED:
                        print(audit_lines([event], app.redactor), flush=True)
                await anyio.sleep(0.5)
    return EXIT_OK


def _print_decided(app: App, args: argparse.Namespace, record: Any) -> int:
    if args.json:
        _print_json(request_json(record, app.redactor))
    else:
        outcome = gate.outcome_of(record)
        print(app.redactor.text(outcome.message))
        if record.result is not None:
            print(json.dumps(app.redactor(record.result), indent=2, sort_keys=True))
    return EXIT_FAILED if record.status is RequestStatus.FAILED else EXIT_OK


async def _audit(app: App, args: argparse.Namespace) -> int:
    events = await app.store.audit_trail(request_id=args.request, limit=args.limit)
    if args.json:
        _print_json([audit_json(e, app.redactor) for e in events])
    else:
        print(audit_lines(events, app.redactor))
    return EXIT_OK


async def _budgets(app: App, args: argparse.Namespace) -> int:
    if getattr(args, "budgets_action", None) == "reset":
        return await _budgets_reset(app, args)
    rows = []
    for agent in sorted(app.config.agents):
        limits = app.config.limits_for(agent)
        usage, failures = await app.store.budget(agent, limits)
        rows.append(budget_json(agent, limits, usage, failures, now=app.clock()))
    await app.store.audit([Event(event="budgets_viewed", actor=_cli_actor(None), detail={"agents": len(rows)})])
    if args.json:
        _print_json(rows)
    else:
        print(budgets_table(rows))
    return EXIT_OK


async def _budgets_reset(app: App, args: argparse.Namespace) -> int:
    if args.agent not in app.config.agents:
        raise CommandError(f"unknown agent {args.agent[:64]!r}", EXIT_REFUSED)
    if args.operator is not None and app.config.operator(args.operator) is None:
        raise CommandError(f"{args.operator[:64]!r} is not a configured operator", EXIT_REFUSED)
    cleared = await app.store.reset_budget(args.agent, actor=_cli_actor(args.operator))
    until = f", cooldown until {iso(cleared.cooldown_until)} lifted" if cleared.cooldown_until else ""
    print(f"reset the budget of {args.agent}: failure streak {cleared.streak} cleared{until}")
    return EXIT_OK


def _cli_actor(operator: str | None) -> str:
    """Who ran a CLI command: the named operator, else the local user account."""
    if operator:
        return f"operator:{operator}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}"


_COMMANDS = {"budgets": _budgets, "requests": _requests, "show": _show, "approve": _approve, "deny": _deny, "audit": _audit}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _log_redacted()
    try:
        if args.command == "audit" and args.audit_action is not None:
            return run_audit_action(args)
        if args.command == "demo":
            from argobox.server.demo import run_demo

            return run_demo(Path(args.dir) if args.dir else None)
        if args.command == "token":
            return _token_new(args)
        command = {"serve": _serve, "operator": _operator, "watch": _watch, "console": _console}.get(
            args.command, _with_app)
        return anyio.run(command, args)
    except CommandError as exc:
        _fail(str(exc))
        return exc.status
    except ConfigError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except Refused as exc:
        _fail(str(exc))
        return EXIT_REFUSED
    except StoreError as exc:
        _fail(f"store unavailable: {exc}")
        return EXIT_STORE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `argobox audit --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


_LOG_FORMAT = RedactingFormatter(build_redactor(), "argobox: %(levelname)s %(message)s")
_failure_redactor = build_redactor()


def _log_redacted() -> None:
    """Log to stderr, every line through the redactor."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LOG_FORMAT)
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def _secrets_of(config: Config) -> None:
    """Once the configuration is read, logs and error messages also hide the secrets it names (the HA token)."""
    global _failure_redactor
    _failure_redactor = build_redactor(config)
    _LOG_FORMAT.use(_failure_redactor)


def _fail(message: str) -> None:
    print(f"argobox: {_failure_redactor.text(message)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
