"""`argobox audit [verify | export | prune | keygen]`: print the audit trail; check, export, prune or sign it.

Exit status: 0 ok; 1 verification failed or the action was refused; 2 bad usage or configuration; 4 the store
could not be used.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import anyio

from argobox.server.app import App, open_app
from argobox.server.audit import KeyFileError, VerifyKey, load_verify_key, verify_export, write_keypair
from argobox.server.cli.common import (
    AS_HELP,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    AddParser,
    Cli,
    CommandError,
    claim,
    limit_count,
    timestamp,
    with_app,
)
from argobox.server.cli.tables import audit_lines
from argobox.server.config.model import Config, ConfigError, load_config, resolve_config_path
from argobox.server.mediation.audit_trail import export_jsonl, verify_store
from argobox.server.mediation.operator_actions import prune_audit
from argobox.server.mediation.views import audit_json
from argobox.server.store import StoreError
from argobox.server.times import iso


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    """`argobox audit` and its actions; without an action it prints the trail."""
    audit = add(
        "audit",
        parents=[common],
        help="print the audit trail; verify, export or prune it",
        description="Print the audit trail, oldest first (every call, decision and operator action), or run one of "
        "its actions.",
    )
    audit.add_argument("--request", metavar="ID", help="only the events of this request")
    audit.add_argument(
        "--limit", type=limit_count, default=None, metavar="N", help="only the most recent N events, 1 to 10000"
    )
    audit.add_argument("--json", action="store_true", help="print a JSON array (exact, for jq)")
    audit.set_defaults(run=with_app(_trail))
    actions = audit.add_subparsers(dest="audit_action", metavar="ACTION", required=False)
    _add_verify_and_export(actions.add_parser, common)
    _add_prune_and_keygen(actions.add_parser, common)


def _add_verify_and_export(add: AddParser, common: argparse.ArgumentParser) -> None:
    verify = add(
        "verify",
        parents=[common],
        help="check the hash chain and the checkpoint",
        description="Check that no event was edited, removed or reordered: the hash chain, and the checkpoint "
        "(with its signature when a key is configured). Exit status 1 names the first broken event.",
    )
    verify.add_argument("--file", metavar="EXPORT", help="verify an export (from `audit export`) instead of the store")
    verify.add_argument(
        "--key",
        metavar="PEM",
        help="Ed25519 public key to check the signature with "
        "(default: [audit] verify_key_file, else the public half of signing_key_file)",
    )
    verify.set_defaults(run=_verify)

    export = add(
        "export",
        parents=[common],
        help="write the trail as JSON Lines",
        description="Write the trail as JSON Lines, ending with the checkpoint, so that `audit verify --file` "
        "can check it anywhere.",
    )
    export.add_argument("--format", choices=["jsonl"], default="jsonl", help="one JSON object per line (default)")
    export.add_argument("--since", type=timestamp, metavar="ISO8601", help="from the first event at or after this")
    export.add_argument("--output", metavar="PATH", help="write here (mode 0600) instead of standard output")
    export.set_defaults(run=_export)


def _add_prune_and_keygen(add: AddParser, common: argparse.ArgumentParser) -> None:
    prune = add(
        "prune",
        parents=[common],
        help="remove old events through a recorded prune",
        description="Remove the events recorded before a date; the prune itself is recorded, so the chain still "
        "verifies.",
    )
    prune.add_argument(
        "--before",
        type=timestamp,
        required=True,
        metavar="DATE",
        help="remove the events recorded before this (ISO 8601; UTC unless it says otherwise)",
    )
    prune.add_argument("--as", dest="operator", required=True, metavar="OPERATOR", help=AS_HELP)
    prune.set_defaults(run=_prune)

    keygen = add(
        "keygen",
        parents=[common],
        help="create an Ed25519 key to sign checkpoints with",
        description="Create an Ed25519 key pair for signing audit checkpoints, and print the lines to configure it.",
    )
    keygen.add_argument(
        "--out", required=True, metavar="PATH", help="private key file; the public key goes to PATH.pub"
    )
    keygen.set_defaults(run=_keygen)


async def _trail(app: App, args: argparse.Namespace, cli: Cli) -> int:
    events = await app.store.audit_trail(request_id=args.request, limit=args.limit)
    if args.json:
        cli.json([audit_json(e, app.redactor) for e in events])
    else:
        cli.out(audit_lines(events, app.redactor))
    return EXIT_OK


def _optional_config(args: argparse.Namespace) -> Config | None:
    """The configuration when there is one (a malformed one is still an error)."""
    try:
        path = resolve_config_path(getattr(args, "config", None))
    except ConfigError:
        return None
    return load_config(path)


def _verify_key(args: argparse.Namespace, config: Config | None) -> VerifyKey | None:
    try:
        if args.key is not None:
            return load_verify_key(Path(args.key))
        return config.audit.verify_key() if config is not None else None
    except KeyFileError as exc:
        raise ConfigError(f"the verification key: {exc}") from None


def _verify(args: argparse.Namespace, cli: Cli) -> int:
    if args.file is not None:
        config = _optional_config(args)
        try:
            report = verify_export(Path(args.file), key=_verify_key(args, config))
        except OSError as exc:
            raise CommandError(f"cannot read the export {args.file!r}: {exc.strerror or exc}", EXIT_USAGE) from None
    else:
        config = cli.load(args)
        key = _verify_key(args, config)
        try:
            report = verify_store(config.storage.path, key=key)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the audit trail in {str(config.storage.path)!r}: {exc}") from None
    cli.out(report.text())
    return EXIT_OK if report.ok else EXIT_REFUSED


@contextmanager
def _output(path: str | None) -> Generator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise ConfigError(f"--output: cannot write {path!r}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        yield file


def _export(args: argparse.Namespace, cli: Cli) -> int:
    config = cli.load(args)
    with _output(args.output) as out:
        try:
            summary = export_jsonl(config.storage.path, out, since=args.since, redact=cli.redactor)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the audit trail in {str(config.storage.path)!r}: {exc}") from None
    if summary.warning:
        cli.fail(summary.warning)
    if args.output is not None:
        span = f" (seq {summary.first_seq}..{summary.last_seq})" if summary.events else ""
        checkpoint = f", checkpoint at seq {summary.checkpoint.seq}" if summary.checkpoint else ", no checkpoint"
        cli.note(f"exported {summary.events} events{span}{checkpoint} to {args.output}")
    return EXIT_OK


def _prune(args: argparse.Namespace, cli: Cli) -> int:
    config = cli.load(args)
    if args.before > time.time():
        raise CommandError(
            f"--before {iso(args.before)} is in the future; pruning removes only past events", EXIT_USAGE
        )

    async def prune() -> int:
        async with open_app(config) as app:
            result = await prune_audit(app, before=args.before, operator=claim(args))
        if result.deleted:
            cli.out(
                f"pruned {result.deleted} events (up to seq {result.through_seq}), recorded as event seq "
                f"{result.record_seq}"
            )
        else:
            cli.out(f"no events before {iso(args.before)} to prune; recorded as event seq {result.record_seq}")
        return EXIT_OK

    return anyio.run(prune)


def _keygen(args: argparse.Namespace, cli: Cli) -> int:
    private = Path(args.out).resolve()
    try:
        public, key_id = write_keypair(private)
    except KeyFileError as exc:
        raise CommandError(str(exc), EXIT_REFUSED) from None
    cli.out(f"wrote the private key {private} (mode 0600) and the public key {public} (key id {key_id})")
    cli.out("add to the configuration:")
    cli.out(f'  [audit]\n  signing_key_file = "{private}"\n  verify_key_file = "{public}"')
    return EXIT_OK
