"""`argobox doctor [--json] [--strict] [--send-test]`: check the setup, then say what each agent can reach.

Exit status: 0 healthy; 1 warnings only, with --strict; 2 errors (a configuration that does not load is one).
"""

from __future__ import annotations

import argparse

import anyio

from argobox.server.app import open_app
from argobox.server.cli.common import AddParser, Cli
from argobox.server.config.model import ConfigError
from argobox.server.mediation.doctor import Report, Severity, diagnose
from argobox.server.store import StoreError


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    doctor = add(
        "doctor",
        parents=[common],
        help="check the configuration, the store, the backends and the channels",
        description="Check that the configuration loads, that an operator exists, that the store and its folder "
        "are private and the audit trail verifies, that Docker and Home Assistant answer (and accept the token), and "
        "that the notification channels are usable, and that a console beyond loopback has https in front; then "
        "report, per agent, what it can reach and what runs without approval, and what each listener needs. Exit 0 "
        "when healthy, 2 on errors, 1 on warnings with --strict.",
    )
    doctor.add_argument("--json", action="store_true", help="print the findings and the surface report as JSON")
    doctor.add_argument("--strict", action="store_true", help="exit 1 when there are warnings (and no errors)")
    doctor.add_argument(
        "--send-test", action="store_true", help="also send a test notification through every configured channel"
    )
    doctor.set_defaults(run=_doctor)


def _doctor(args: argparse.Namespace, cli: Cli) -> int:
    try:
        config = cli.load(args)
    except ConfigError as exc:
        report = Report()
        report.add("config", Severity.ERROR, str(exc), "fix the configuration file (config.example.toml has every key)")
        return _show(report, args, cli)

    async def run() -> Report:
        try:
            async with open_app(config) as app:
                return await diagnose(app, send=args.send_test)
        except (StoreError, ConfigError) as exc:
            failed = Report()
            failed.add("config", Severity.OK, f"{config.source} loads")
            failed.add("store", Severity.ERROR, str(exc), "fix [storage] path or the permissions of its folder")
            return failed

    return _show(anyio.run(run), args, cli)


def _show(report: Report, args: argparse.Namespace, cli: Cli) -> int:
    if args.json:
        cli.json(report.as_json())
    else:
        cli.out("\n".join(report.lines()))
    return report.exit_code(strict=args.strict)
