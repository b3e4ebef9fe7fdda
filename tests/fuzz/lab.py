"""The fuzzer's lab: real containers holding seeded secrets, a configuration under which every change needs an
operator's approval, and the checks that nothing leaked into the store or the export and nothing changed on the
real backends (as the Docker engine's own events and Home Assistant's own states tell).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import docker

from argobox.policy.catalog import Classification
from argobox.server.config.model import load_config
from tests.fixtures_docker import IDLE_COMMAND, SESSION_LABEL, TEST_IMAGE, TEST_LABEL
from tests.fuzz.hostile import Lab, Pools
from tests.fuzz.oracle import Oracle

ARGOBOX = Path(sys.executable).with_name("argobox")
CLI_TIMEOUT_S = 120
UNCHANGED_STATUSES = frozenset({"pending_approval", "denied", "expired"})
"""The only states a request for a change may be in after a run that approved nothing."""

CONFIG = """\
[storage]
path = "argobox.db"

[docker]
base_url = "{docker}"
timeout_seconds = 10

[homeassistant]
url = "{home}"
timeout_seconds = 10

[limits]
requests_per_minute = 1000000
mutations_per_hour = 1000000
max_pending = 10000
identical_calls = {{ count = 1000000, window_seconds = 1 }}
failures = {{ count = 1000000, window_seconds = 1, cooldown_seconds = 0 }}
per_target = {{ count = 1000000, window_seconds = 1 }}

[[operators]]
name = "alice"
token_sha256 = "{operator_sha}"

[[operators]]
name = "vera"
token_sha256 = "{viewer_sha}"
role = "viewer"

[agents.openclaw]
token_sha256 = "{agent_sha}"

[[agents.openclaw.rules]]
tools = ["docker_list_containers", "docker_inspect_container", "docker_container_logs"]
effect = "allow"

[[agents.openclaw.rules]]
tools = ["ha_list_entities", "ha_get_state", "ha_list_services"]
effect = "allow"

[[agents.openclaw.rules]]
tools = ["docker_stop_container"]
args = {{ container = ["{vault}"] }}
effect = "deny"

[[agents.openclaw.rules]]
tools = ["docker_start_container", "docker_stop_container", "docker_restart_container", "ha_call_service"]
effect = "approve"

[agents.reader.limits]
requests_per_minute = 30

[[agents.reader.rules]]
tools = ["docker_list_containers"]
effect = "allow"
{extra}"""
"""Reads are allowed; every change needs approval (one is denied outright); the reader agent has a small budget;
vera is a viewer. `extra` adds the runbooks, the second Docker host and their rules (`tests.fuzz.runbooks`)."""


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pem_key() -> str:
    body = base64.b64encode(secrets.token_bytes(300)).decode()
    return (
        "-----BEGIN PRIVATE KEY-----\n"
        + "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        + "\n-----END PRIVATE KEY-----"
    )


@dataclass
class FuzzLab:
    """Everything the fuzz tests share: where the configuration is, what was seeded, and the state before."""

    config: Path
    names: Lab
    pools: Pools
    oracle: Oracle
    env: dict[str, str]
    """The secrets an ArgoBox process of this lab has in its environment."""
    agent_token: str
    operator_token: str
    viewer_token: str
    containers: dict[str, str]
    """Container ids by name."""
    docker_url: str
    home: tuple[str, str]
    """Home Assistant's URL and token, to read its states."""
    started: float = field(default_factory=time.time)
    """When the lab was ready (its containers created and started): no engine event may follow."""
    states: dict[str, tuple[str, str, str]] = field(default_factory=dict[str, tuple[str, str, str]])

    @property
    def db(self) -> Path:
        return self.config.parent / "argobox.db"

    @property
    def marks(self) -> Path:
        """Where the `mark` runbook would leave a file: it must stay empty (the fuzzer approves nothing)."""
        return self.config.parent / "marks"

    def process_env(self) -> dict[str, str]:
        """The environment of an ArgoBox process started by a test: PATH and the lab's secrets, nothing else."""
        secrets = {k: v for k, v in self.env.items() if k != "ARGOBOX_OPERATOR_TOKEN"}  # an agent's server has none
        return {"PATH": os.environ["PATH"], "HOME": str(self.config.parent), **secrets}

    def check_untouched(self, surface: str) -> None:
        """Report a finding for any seeded secret in the store's files or in the audit export, any change to a
        container or an entity, and any request for a change that left `pending`, `denied` or `expired`."""
        oracle = self.oracle
        for path in sorted(self.config.parent.glob("argobox.db*")):
            oracle.check(f"{surface}: {path.name}", stored_bytes(path).decode("utf-8", "replace"), "", shown=False)
        exported = subprocess.run(
            [str(ARGOBOX), "--config", str(self.config), "audit", "export"],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            env={"PATH": os.environ["PATH"], "HOME": str(self.config.parent)},
            check=False,
        )
        oracle.check(f"{surface}: audit export", exported.stdout + exported.stderr, "argobox audit export")
        if exported.returncode != 0 or not exported.stdout:
            oracle.report("crash", surface, f"audit export exited {exported.returncode}", exported.stderr[-500:])
        for event in self.engine_events():
            oracle.report("change", surface, f"the engine reports {event}", "")
        now = read_states(*self.home)
        for entity, before in self.states.items():
            if now.get(entity) != before:
                oracle.report("change", surface, f"{entity} was {before}, is {now.get(entity)}", "")
        for row in self.changed_requests():
            oracle.report("change", surface, f"a request for a change is {row}", "")
        for mark in sorted(self.marks.iterdir()):
            oracle.report("change", surface, f"a runbook left {mark.name} on the local host", "")

    def engine_events(self) -> list[str]:
        """What the engine itself recorded for the lab's containers since the lab was ready.

        Read with the docker CLI: docker-py's event stream leaves its socket for the garbage collector."""
        filters = [arg for cid in self.containers.values() for arg in ("--filter", f"container={cid}")]
        listed = subprocess.run(
            [
                *("docker", "-H", self.docker_url, "events", "--since", f"{self.started:.6f}"),
                *("--until", f"{time.time():.6f}", *filters, "--format", "{{.Action}} of {{.Actor.Attributes.name}}"),
            ],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            env={"PATH": os.environ["PATH"], "DOCKER_CONFIG": str(self.config.parent / "docker-cli")},
            check=True,
        )
        return listed.stdout.splitlines()

    def changed_requests(self) -> list[tuple[Any, ...]]:
        catalog = load_config(self.config).catalog  # the runbooks' tools too
        mutations = [name for name, tool in catalog.items() if tool.classification is Classification.MUTATE]
        marks = ",".join("?" * len(mutations))
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)) as db:
            rows = db.execute(
                f"SELECT id, tool, status FROM requests WHERE tool IN ({marks})",  # noqa: S608 - placeholders only
                mutations,
            ).fetchall()
            approved = db.execute("SELECT request_id, event FROM audit WHERE event = 'approved'").fetchall()
        return [row for row in rows if row[2] not in UNCHANGED_STATUSES] + approved


def stored_bytes(path: Path) -> bytes:
    """The bytes of a store file, read by another process: closing a descriptor of a database file would drop every
    SQLite lock this process holds on it (POSIX locks are per process), and the App open here would then read a WAL
    that another process has just reset ("database disk image is malformed")."""
    return subprocess.run(["cat", str(path)], capture_output=True, check=True, timeout=CLI_TIMEOUT_S).stdout


def read_states(url: str, token: str) -> dict[str, tuple[str, str, str]]:
    """Every entity's state and when it last changed or updated, as Home Assistant reports them."""
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"{url}/api/states", headers=headers)  # noqa: S310 - the fixture's loopback URL
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the same
        states: list[dict[str, Any]] = json.load(response)
    return {s["entity_id"]: (s["state"], s["last_changed"], s["last_updated"]) for s in states}


def make_containers(client: docker.DockerClient, session: str, seeded: dict[str, str]) -> dict[str, str]:
    """The lab's containers: one to change, one that prints the seeded secrets, one stopped. Ids by name."""
    suffix = secrets.token_hex(4)
    printer = (
        'echo "$DB_PASSWORD"; echo "$TLS_KEY"; echo "connecting to $SERVICE_URL"; '
        'echo "login password=$DB_PASSWORD"; echo "backup marker done"; ' + IDLE_COMMAND[2]
    )
    specs: list[tuple[str, list[str], dict[str, str], dict[str, str], bool]] = [
        (f"argobox-fuzz-web-{suffix}", IDLE_COMMAND, {}, {}, True),
        (
            f"argobox-fuzz-vault-{suffix}",
            ["sh", "-c", printer],
            {k: seeded[k] for k in ("DB_PASSWORD", "TLS_KEY", "SERVICE_URL")},
            {"backup.password": seeded["backup.password"]},
            True,
        ),
        (f"argobox-fuzz-idle-{suffix}", IDLE_COMMAND, {}, {}, False),
    ]
    ids: dict[str, str] = {}
    for name, command, env, labels, start in specs:
        container = client.containers.create(
            TEST_IMAGE,
            command=command,
            name=name,
            network_mode="none",
            environment=env,
            labels={**labels, TEST_LABEL: "1", SESSION_LABEL: session},
        )
        ids[name] = container.id or ""
        if start:
            container.start()
    return ids


async def wait_for_logs(client: docker.DockerClient, container: str, marker: bytes) -> None:
    """Until the container has printed `marker` (bounded)."""
    with anyio.fail_after(15):
        while marker not in client.containers.get(container).logs():  # noqa: ASYNC110 - the engine has no event
            await anyio.sleep(0.05)


def write_config(
    directory: Path, *, docker_url: str, home_url: str, vault: str, tokens: dict[str, str], extra: str
) -> Path:
    """The lab's configuration; `tokens` are the agent's, the operator's and the viewer's."""
    path = directory / "argobox.toml"
    hashes = {f"{who}_sha": sha(token) for who, token in tokens.items()}
    path.write_text(CONFIG.format(docker=docker_url, home=home_url, vault=vault, extra=extra, **hashes))
    return path
