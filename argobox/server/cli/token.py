"""`argobox token new AGENT | --operator NAME [--write]`: a fresh token, shown once, and its hash for the config."""

from __future__ import annotations

import argparse

from argobox.server.cli.common import (
    AGENT_TOKEN_ENV,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    OPERATOR_TOKEN_ENV,
    AddParser,
    Cli,
    CommandError,
)
from argobox.server.config.model import load_config, resolve_config_path
from argobox.server.config.tokens import (
    TokenWriteError,
    new_token,
    token_sha256,
    write_operator_token_hash,
    write_token_hash,
)

_AGENT_USE = (
    "The token is shown only this once: give it to the agent's MCP client "
    f"(HTTP: Authorization: Bearer <token>; stdio: {AGENT_TOKEN_ENV})."
)
_OPERATOR_USE = (
    f"The token is shown only this once: the operator sets it as {OPERATOR_TOKEN_ENV} for `argobox approve`, `deny`, "
    "`budgets reset`, `audit prune` and `argobox operator`, signs in to the web console with it, and gives it to a "
    "desktop MCP client as Authorization: Bearer <token> for the console's /mcp."
)


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    token = add(
        "token",
        parents=[common],
        help="make agent and operator tokens",
        description="Make bearer tokens. Only a token's SHA-256 is kept in the configuration.",
    )
    actions = token.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    new = actions.add_parser(
        "new",
        parents=[common],
        help="print a fresh token for AGENT (or --operator NAME), and its hash",
        description="Print a fresh random token (shown only this once) and the token_sha256 line for the "
        "configuration; with --write, put that line into the configuration file itself (comments and layout "
        "are kept). Running servers pick the change up within seconds.",
    )
    new.add_argument("agent", metavar="AGENT", nargs="?", help="the configured agent the token is for")
    new.add_argument("--operator", metavar="NAME", help="make the token for the configured operator NAME instead")
    new.add_argument(
        "--write",
        action="store_true",
        help="write the token_sha256 into [agents.AGENT] (or the [[operators]] entry of NAME) of the config file",
    )
    new.set_defaults(run=_new)


def _new(args: argparse.Namespace, cli: Cli) -> int:
    if (args.agent is None) == (args.operator is None):
        raise CommandError("token new needs AGENT or --operator NAME (one of them)", EXIT_USAGE)
    path = resolve_config_path(getattr(args, "config", None))
    config = load_config(path)
    if args.operator is not None:
        if config.operator(args.operator) is None:
            known = ", ".join(op.name for op in config.operators) or "none"
            raise CommandError(f"unknown operator {args.operator[:64]!r} (configured operators: {known})", EXIT_REFUSED)
        where, use, write = f"the [[operators]] entry of {args.operator}", _OPERATOR_USE, write_operator_token_hash
        name = str(args.operator)
    else:
        if args.agent not in config.agents:
            known = ", ".join(sorted(config.agents)) or "none"
            raise CommandError(f"unknown agent {args.agent[:64]!r} (configured agents: {known})", EXIT_REFUSED)
        where, use, write = f"[agents.{args.agent}]", _AGENT_USE, write_token_hash
        name = str(args.agent)
    token = new_token()
    digest = token_sha256(token)
    if args.write:
        try:
            write(path, name, digest)
        except TokenWriteError as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
        cli.secret("token", token)
        cli.note(
            f"argobox: wrote the token_sha256 into {where} of {path}; running servers pick it up within seconds. {use}"
        )
        return EXIT_OK
    cli.secret("token", token)
    cli.out(f'token_sha256 = "{digest}"')
    cli.note(f"argobox: paste the token_sha256 line into {where} of {path} (or run again with --write). {use}")
    return EXIT_OK
