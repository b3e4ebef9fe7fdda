"""`argobox listen`: hear the Approve and Deny buttons of Home Assistant pushes, for setups that run neither
`argobox serve --http` nor the console (which listen themselves). It also delivers notifications and follows
configuration changes, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse

import anyio

from argobox.server.app import App, open_app
from argobox.server.cli.common import EXIT_OK, EXIT_USAGE, AddParser, Cli, CommandError
from argobox.server.cli.operator import follow_config
from argobox.server.config.model import Config
from argobox.server.mediation.notify import notify_forever
from argobox.server.mediation.phone.listening import listener_refusal


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    listen = add(
        "listen",
        parents=[common],
        help="hear the Approve and Deny buttons of Home Assistant pushes (without serve --http)",
        description="Listen for the Approve and Deny buttons of the Home Assistant push "
        "([notifications.homeassistant] actions = true) over Home Assistant's WebSocket API, and decide each press "
        "as the operator whose ha_user_id pressed it. Also delivers notifications and follows configuration changes. "
        "`argobox serve --http` does all this itself.",
    )
    listen.set_defaults(run=_run)


def _run(args: argparse.Namespace, cli: Cli) -> int:
    config = cli.load(args)
    refusal = listener_refusal(config)
    if refusal is not None:
        raise CommandError(refusal, EXIT_USAGE)
    return anyio.run(_listen, config)


async def _follow(app: App) -> None:
    await follow_config(app, "phone listener")


async def _listen(config: Config) -> int:
    from argobox.server.transport.phone_listener import run_listener

    async with open_app(config) as app:
        await run_listener(app, background=[notify_forever, _follow])
    return EXIT_OK
