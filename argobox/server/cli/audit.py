"""`argobox audit verify | export | prune | keygen`: the audit trail's own commands.

`argobox audit` without an action still prints the trail (see `cli`). Exit status: 0 ok; 1 verification
failed or the action was refused; 2 bad usage or configuration; 4 the store could not be used.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import anyio

from argobox.server.app import build_redactor, open_app
from argobox.server.audit import KeyFileError, VerifyKey, load_verify_key, verify_export, write_keypair
from argobox.server.config.model import Config, ConfigError, load_config, resolve_config_path
from argobox.server.mediation.audit_trail import export_jsonl, verify_store
from argobox.server.mediation.operator_actions import prune_audit
from argobox.server.mediation.operators import OperatorClaim
from argobox.server.store import StoreError
from argobox.server.times import TimeFormatError, iso, parse_time

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def timestamp(value: str) -> float:
    """`parse_time` for argparse."""
    try:
        return parse_time(value)
    except TimeFormatError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_audit_actions(audit: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """The actions under `argobox audit`; without one, `argobox audit` prints the trail as before."""
    actions = audit.add_subparsers(dest="audit_action", metavar="ACTION", required=False)

    verify = actions.add_parser("verify", parents=[common], help="check the hash chain and the checkpoint")
    verify.add_argument("--file", metavar="EXPORT", help="verify an export (from `audit export`) instead of the store")
    verify.add_argument(
        "--key",
        metavar="PEM",
        help="Ed25519 public key to check the signature with "
        "(default: [audit] verify_key_file, else the public half of signing_key_file)",
    )

    export = actions.add_parser("export", parents=[common], help="write the trail as JSON Lines")
    export.add_argument("--format", choices=["jsonl"], default="jsonl", help="one JSON object per line (default)")
    export.add_argument("--since", type=timestamp, metavar="ISO8601", help="from the first event at or after this")
    export.add_argument("--output", metavar="PATH", help="write here (mode 0600) instead of standard output")

    prune = actions.add_parser("prune", parents=[common], help="remove old events through a recorded prune")
    prune.add_argument(
        "--before",
        type=timestamp,
        required=True,
        metavar="DATE",
        help="remove the events recorded before this (ISO 8601; UTC unless it says otherwise)",
    )
    prune.add_argument("--as", dest="operator", required=True, metavar="OPERATOR")

    keygen = actions.add_parser("keygen", parents=[common], help="create an Ed25519 key to sign checkpoints with")
    keygen.add_argument(
        "--out", required=True, metavar="PATH", help="private key file; the public key goes to PATH.pub"
    )


def run_audit_action(args: argparse.Namespace) -> int:
    """Run `argobox audit ACTION`. Raises ConfigError, StoreError and Refused for `cli.main` to report."""
    action = {"verify": _verify, "export": _export, "prune": _prune, "keygen": _keygen}[args.audit_action]
    return action(args)


def _fail(message: str) -> None:
    print(f"argobox: {build_redactor().text(message)}", file=sys.stderr)


def _config(args: argparse.Namespace) -> Config:
    return load_config(resolve_config_path(getattr(args, "config", None)))


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


def _verify(args: argparse.Namespace) -> int:
    if args.file is not None:
        config = _optional_config(args)
        try:
            report = verify_export(Path(args.file), key=_verify_key(args, config))
        except OSError as exc:
            _fail(f"cannot read the export {args.file!r}: {exc.strerror or exc}")
            return EXIT_USAGE
    else:
        config = _config(args)
        key = _verify_key(args, config)
        try:
            report = verify_store(config.storage.path, key=key)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the audit trail in {str(config.storage.path)!r}: {exc}") from None
    print(report.text())
    return EXIT_OK if report.ok else EXIT_FAILED


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise ConfigError(f"--output: cannot write {path!r}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        yield file


def _export(args: argparse.Namespace) -> int:
    config = _config(args)
    with _output(args.output) as out:
        try:
            summary = export_jsonl(config.storage.path, out, since=args.since, redact=build_redactor())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the audit trail in {str(config.storage.path)!r}: {exc}") from None
    if summary.warning:
        _fail(summary.warning)
    if args.output is not None:
        span = f" (seq {summary.first_seq}..{summary.last_seq})" if summary.events else ""
        checkpoint = f", checkpoint at seq {summary.checkpoint.seq}" if summary.checkpoint else ", no checkpoint"
        print(f"exported {summary.events} events{span}{checkpoint} to {args.output}", file=sys.stderr)
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.before > time.time():
        _fail(f"--before {iso(args.before)} is in the future; pruning removes only past events")
        return EXIT_USAGE

    async def prune() -> int:
        async with open_app(config) as app:
            claim = OperatorClaim(args.operator, token=os.environ.get("ARGOBOX_OPERATOR_TOKEN") or None, channel="cli")
            result = await prune_audit(app, before=args.before, operator=claim)
        if result.deleted:
            print(
                f"pruned {result.deleted} events (up to seq {result.through_seq}), recorded as event seq "
                f"{result.record_seq}"
            )
        else:
            print(f"no events before {iso(args.before)} to prune; recorded as event seq {result.record_seq}")
        return EXIT_OK

    return anyio.run(prune)


def _keygen(args: argparse.Namespace) -> int:
    private = Path(args.out).resolve()
    try:
        public, key_id = write_keypair(private)
    except KeyFileError as exc:
        _fail(str(exc))
        return EXIT_FAILED
    print(f"wrote the private key {private} (mode 0600) and the public key {public} (key id {key_id})")
    print("add to the configuration:")
    print(f'  [audit]\n  signing_key_file = "{private}"\n  verify_key_file = "{public}"')
    return EXIT_OK
