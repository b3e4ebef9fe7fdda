"""The README's runbook snippets, used as written: the local one as is, the SSH one against the real test sshd (only
the address, the key and known_hosts paths and the scratch directory filled in)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from argobox.policy.decide import Effect, decide
from argobox.server.config.model import load_config
from tests.e2e.test_runbooks import agent_calls, argobox
from tests.fixtures_sshd import SshServer

pytestmark = [pytest.mark.anyio]

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = """\
[storage]
path = "argobox.db"

[docker]
simulated_lab = "lab.json"

[[operators]]
name = "alice"

[agents.openclaw]
"""


def snippet(name: str, source: Path = README) -> str:
    match = re.search(rf"<!-- {name} -->\s*```toml\n(.*?)```", source.read_text(), re.DOTALL)
    assert match, f"{source.name} lost its {name}"
    return match.group(1)


async def test_readme_local_runbook_snippet_runs_on_the_argobox_machine(tmp_path: Path) -> None:
    config = tmp_path / "argobox.toml"
    config.write_text(HEADER + snippet("runbook-local-snippet"))

    (usage,) = await agent_calls(config, [("runbook_disk_usage", {"mount": "/"})])

    assert usage.structured_content["status"] == "succeeded", usage.structured_content
    assert usage.structured_content["result"]["host"] == "local"
    assert "Filesystem" in usage.structured_content["result"]["stdout"]


@pytest.mark.sshd
async def test_readme_ssh_runbook_snippet_runs_through_a_real_sshd(ssh_server: SshServer, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    (scratch / "downloads").mkdir(parents=True)
    old, new = scratch / "downloads" / "old.part", scratch / "downloads" / "new.part"
    old.write_text("stale")
    new.write_text("fresh")
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    text = (
        snippet("runbook-ssh-snippet")
        .replace("argobox@nas.lan:22", ssh_server.target)
        .replace("/etc/argobox/known_hosts", str(ssh_server.known_hosts))
        .replace("/etc/argobox/id_ed25519", str(ssh_server.key_file))
        .replace("/srv/scratch", str(scratch))
    )
    config = tmp_path / "argobox.toml"
    config.write_text(HEADER + text)

    uptime, queued = await agent_calls(
        config,
        [
            ("runbook_nas_uptime", {}),
            ("runbook_nas_clean_tmp", {"area": "downloads", "days": 2}),
        ],
    )
    request_id = queued.structured_content["request_id"]
    shown = argobox(config, "show", request_id)
    approved = argobox(config, "approve", request_id, "--as", "alice")
    audit = json.loads(argobox(config, "audit", "--request", request_id, "--json").stdout)

    assert uptime.structured_content["status"] == "succeeded"
    assert "load average" in uptime.structured_content["result"]["stdout"]
    assert queued.structured_content["status"] == "pending_approval"
    assert str(old) in shown.stdout and str(new) not in shown.stdout.split("preview", 1)[1]
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert not old.exists() and new.exists()
    assert audit[-1]["detail"]["summary"]["argv"][:2] == ["find", str(scratch / "downloads")]


def test_readme_untested_runbook_examples_are_at_least_valid_configuration(tmp_path: Path) -> None:
    text = snippet("runbook-untested-examples").replace(
        "[hosts.pve]", snippet("runbook-ssh-snippet").split("[runbooks.nas_uptime]")[0] + "\n[hosts.pve]"
    )
    config = tmp_path / "argobox.toml"
    config.write_text(HEADER + text)

    loaded = load_config(config)

    assert sorted(loaded.runbooks) == ["restart_unit", "vm_reboot", "zfs_scrub"]
    grant = loaded.grant("openclaw")
    assert decide(grant, "runbook_vm_reboot", {"vmid": 101}).effect is Effect.ALLOW
    assert decide(grant, "runbook_vm_reboot", {"vmid": 103}).effect is Effect.DENY
    assert decide(grant, "runbook_zfs_scrub", {"pool": "tank"}).effect is Effect.APPROVE
