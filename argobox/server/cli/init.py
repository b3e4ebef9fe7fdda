"""`argobox init [--dir DIR] [--docker URL] [--homeassistant URL]`: write a first configuration and say what is next.

The configuration is minimal and commented (`argobox.server.config.starter`): Docker only unless Home Assistant is
named, one operator and one agent with fresh tokens (printed once; only their hashes are written), reads at once
and every change behind approval. An existing file is never overwritten.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

import anyio
import httpx2

from argobox.server.cli.common import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, AddParser, Cli, CommandError
from argobox.server.config.model import default_config_paths
from argobox.server.config.starter import (
    CONFIG_NAME,
    NAME,
    NAME_RULE,
    Starter,
    default_dirs,
    operator_name,
    starter_toml,
)
from argobox.server.config.tokens import new_token, token_sha256
from argobox.server.files import UnsafeFolder, create_exclusive, private_folder

PROBE_TIMEOUT_SECONDS = 5.0
DEFAULT_DOCKER = "unix:///var/run/docker.sock"


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    init = add(
        "init",
        help="write a first configuration for what you have",
        description="Write a minimal, commented configuration: one operator and one agent with fresh tokens "
        "(shown once), read tools at once and every change behind approval. Docker only unless --homeassistant "
        "is given; the store goes in the data folder (/var/lib/argobox for root, else ~/.local/share/argobox). "
        "It checks what it can reach, and never overwrites a file.",
    )
    init.add_argument(
        "--dir",
        metavar="DIR",
        help="where to write argobox.toml (default: /etc/argobox for root, else ~/.config/argobox)",
    )
    init.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the store goes (default: /var/lib/argobox for root, else ~/.local/share/argobox)",
    )
    init.add_argument(
        "--docker", metavar="URL", help=f"the Docker engine (default: $DOCKER_HOST, else {DEFAULT_DOCKER})"
    )
    init.add_argument(
        "--homeassistant", metavar="URL", help="Home Assistant's URL, e.g. http://192.168.1.10:8123 (default: none)"
    )
    init.add_argument("--agent", metavar="NAME", default="openclaw", help="the agent's name (default: openclaw)")
    init.add_argument("--operator", metavar="NAME", help="the operator's name (default: your user name)")
    init.add_argument(
        "--group",
        metavar="GROUP",
        help="let this group read the configuration (its folder 0750, the file 0640), e.g. argobox for the "
        "service user of contrib/systemd (default: only you can read it)",
    )
    init.set_defaults(run=_init)


def _init(args: argparse.Namespace, cli: Cli) -> int:
    root = os.geteuid() == 0
    config_dir, data_dir = default_dirs(root=root)
    config_dir = Path(args.dir).expanduser() if args.dir else config_dir
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else data_dir
    path = config_dir / CONFIG_NAME
    if path.exists():
        raise CommandError(
            f"{path} exists; ArgoBox never overwrites a configuration (move it away first)", EXIT_REFUSED
        )
    gid = _group_id(args.group) if args.group else None
    operator = args.operator or operator_name(_user())
    _check_arguments(
        {"--agent": args.agent, "--operator": operator},
        {
            "--docker": args.docker,
            "--dir": args.dir,
            "--data-dir": args.data_dir,
            "--homeassistant": args.homeassistant,
        },
    )
    operator_token, agent_token = new_token(), new_token()
    starter = Starter(
        store=(data_dir / "argobox.db").resolve(),
        docker_url=args.docker or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER,
        homeassistant_url=args.homeassistant.rstrip("/") if args.homeassistant else None,
        operator=operator,
        operator_sha256=token_sha256(operator_token),
        agent=args.agent,
        agent_sha256=token_sha256(agent_token),
    )
    text = starter_toml(starter)
    _check_names(text, path)
    try:
        private_folder(data_dir)
        config_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        fd = create_exclusive(path)
    except FileExistsError:
        raise CommandError(f"{path} exists; ArgoBox never overwrites a configuration", EXIT_REFUSED) from None
    except (OSError, UnsafeFolder) as exc:
        raise CommandError(f"cannot write {path} or {data_dir}: {exc}", EXIT_USAGE) from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    mode = "0600"
    if gid is not None:
        _share(path, gid)
        mode = f"0640, group {args.group}"
    cli.out(f"wrote {path} (mode {mode}); the store will be {starter.store}")
    for line in anyio.run(_probe, starter):
        cli.out(line)
    _next_steps(cli, path, starter, operator_token, agent_token)
    return EXIT_OK


def _group_id(name: str) -> int:
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise CommandError(
            f"no group {name[:64]!r} on this machine: create it first (contrib/systemd/argobox.sysusers.conf "
            "makes the argobox user and group)",
            EXIT_USAGE,
        ) from None


def _share(path: Path, gid: int) -> None:
    """Let group `gid` read the configuration: the file 0640 and its folder 0750, both in that group."""
    try:
        for target, mode in ((path.parent, 0o750), (path, 0o640)):
            os.chown(target, -1, gid, follow_symlinks=False)
            target.chmod(mode)
    except OSError as exc:
        raise CommandError(f"wrote {path}, but could not give it to the group: {exc}", EXIT_USAGE) from None


def _check_arguments(names: dict[str, str], texts: dict[str, str | None]) -> None:
    """Refuse, before anything is rendered or written, a name that is not a configured name and an argument that is
    not text (bytes the locale could not decode)."""
    for flag, value in names.items():
        if not NAME.fullmatch(value):
            raise CommandError(f"{flag} {value!r} is not a valid name: use {NAME_RULE} (e.g. openclaw)", EXIT_USAGE)
    for flag, value in {**names, **texts}.items():
        try:
            (value or "").encode("utf-8")
        except UnicodeEncodeError:
            raise CommandError(f"{flag} {value!r} is not valid UTF-8 text; give it as plain text", EXIT_USAGE) from None


def _check_names(text: str, path: Path) -> None:
    """The written file must load: whatever it would refuse is refused before anything is written."""
    import tomllib

    from argobox.server.config.model import ConfigError, parse_config

    try:
        parse_config(tomllib.loads(text), path)
    except tomllib.TOMLDecodeError as exc:
        raise CommandError(
            f"the arguments do not make a readable configuration ({exc}); check them", EXIT_USAGE
        ) from None
    except ConfigError as exc:
        raise CommandError(str(exc).replace(f"{path}: ", ""), EXIT_USAGE) from None


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


async def _probe(starter: Starter) -> list[str]:
    """What answers: the Docker engine (its version), and Home Assistant (reachable; the token is checked by doctor)."""
    from argobox.adapters.base import AdapterError
    from argobox.adapters.docker_engine import DockerEngine

    lines: list[str] = []
    engine = DockerEngine(starter.docker_url, timeout=PROBE_TIMEOUT_SECONDS)
    try:
        with anyio.fail_after(PROBE_TIMEOUT_SECONDS * 2):
            lines.append(f"docker: {await engine.describe()}")
    except (AdapterError, TimeoutError) as exc:
        lines.append(f"docker: not reachable yet ({exc or 'no answer'}); check [docker] base_url")
    finally:
        await engine.aclose()
    if starter.homeassistant_url is not None:
        lines.append(await _probe_home(starter.homeassistant_url))
    return lines


async def _probe_home(url: str) -> str:
    try:
        async with httpx2.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS, follow_redirects=False) as client:
            answer = await client.get(f"{url}/api/")
    except httpx2.HTTPError as exc:
        return f"homeassistant: not reachable yet ({type(exc).__name__}); check [homeassistant] url"
    if answer.status_code in (200, 401):
        return f"homeassistant: {url} answers; set ARGOBOX_HA_TOKEN to a long-lived access token"
    return f"homeassistant: {url} answered HTTP {answer.status_code}; is it Home Assistant?"


def _next_steps(cli: Cli, path: Path, starter: Starter, operator_token: str, agent_token: str) -> None:
    cli.out("")
    cli.out(f"The tokens are shown only now; {path} holds only their hashes.")
    cli.secret(f"operator token ({starter.operator})", operator_token)
    cli.secret(f"agent token ({starter.agent})", agent_token)
    cli.out("")
    cli.out("Next:")
    if path.absolute() not in [p.absolute() for p in default_config_paths()[1:]]:  # else every command finds it
        cli.out(f"  export ARGOBOX_CONFIG={path}")
    cli.out(f"  export ARGOBOX_OPERATOR_TOKEN='<operator token>'   # you, when you approve as {starter.operator}")
    cli.out("  argobox doctor                                      # checks everything; fix what it says")
    cli.out(f"  give the agent token to {starter.agent}'s MCP client (see the README: Connect OpenClaw)")
