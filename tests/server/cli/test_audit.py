"""`argobox audit` and its actions as an operator uses them: the trail as before, verify, export, prune, keygen,
signed checkpoints from configured keys, and exit statuses (0 ok, 1 broken or refused, 2 usage or config)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import WriteConfig
from tests.server.cli.support import ARGOBOX, argobox

FIELDS = {"seq", "at", "request_id", "event", "actor", "agent", "tool", "detail", "prev_hash", "hash"}


def some_events(config: Path, count: int = 3) -> None:
    """Audited refusals: a stranger tries to deny requests."""
    for n in range(count):
        argobox(config, "deny", f"nosuchrequest{n:03d}", "--as", "mallory", "--reason", "x")


def test_audit_without_an_action_prints_the_trail_as_before(write_config: WriteConfig) -> None:
    config = write_config()
    some_events(config, 2)

    plain = argobox(config, "audit")
    as_json = argobox(config, "audit", "--json")
    one = argobox(config, "audit", "--request", "nosuchrequest001", "--json")
    request_named_verify = argobox(config, "audit", "--request", "verify")

    assert plain.returncode == 0 and "operator_refused by operator:mallory" in plain.stdout
    events = json.loads(as_json.stdout)
    assert len(events) == 2 and all(set(e) >= FIELDS for e in events)
    assert events[1]["prev_hash"] == events[0]["hash"]
    assert [e["request_id"] for e in json.loads(one.stdout)] == ["nosuchrequest001"]
    assert request_named_verify.returncode == 0 and request_named_verify.stdout.strip() == "no audit events"


def test_verify_export_and_offline_verify(write_config: WriteConfig, tmp_path: Path) -> None:
    config = write_config()
    some_events(config)
    export_file = tmp_path / "trail.jsonl"

    verified = argobox(config, "audit", "verify")
    exported = argobox(config, "audit", "export", "--format", "jsonl", "--output", str(export_file))
    to_stdout = argobox(config, "audit", "export")
    offline = argobox(None, "audit", "verify", "--file", str(export_file))
    since_future = argobox(config, "audit", "export", "--since", "2999-01-01")

    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("ok: 3 events, head ")
    assert exported.returncode == 0 and "exported 3 events (seq 1..3), checkpoint at seq 3" in exported.stderr
    assert export_file.stat().st_mode & 0o777 == 0o600
    assert to_stdout.stdout == export_file.read_text()
    lines = [json.loads(line) for line in export_file.read_text().splitlines()]
    assert all(FIELDS | {"at_epoch"} <= set(line) for line in lines[:-1]) and "checkpoint" in lines[-1]
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert offline.stdout.splitlines()[0] == verified.stdout.splitlines()[0]
    assert since_future.returncode == 0 and since_future.stdout == ""


def test_verify_exits_1_naming_the_first_broken_seq(write_config: WriteConfig) -> None:
    config = write_config()
    some_events(config)
    db = sqlite3.connect(config.parent / "argobox.db", isolation_level=None)
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("UPDATE audit SET actor = 'operator:alice' WHERE seq = 2")
    db.close()

    result = argobox(config, "audit", "verify")

    assert result.returncode == 1
    assert result.stdout.startswith("broken at seq 2: edited: ")


def test_prune_refuses_future_dates_strangers_and_garbage(write_config: WriteConfig) -> None:
    config = write_config()
    some_events(config)

    future = argobox(config, "audit", "prune", "--before", "2999-01-01T00:00:00Z", "--as", "alice")
    stranger = argobox(config, "audit", "prune", "--before", "2020-01-01", "--as", "mallory")
    garbage = argobox(config, "audit", "prune", "--before", "last tuesday", "--as", "alice")
    events = json.loads(argobox(config, "audit", "--json").stdout)

    assert future.returncode == 2 and "is in the future" in future.stderr
    assert stranger.returncode == 1 and "'mallory' is not a configured operator" in stranger.stderr
    assert garbage.returncode == 2 and "not an ISO 8601 date" in garbage.stderr
    assert [e["event"] for e in events] == ["operator_refused"] * 4  # the stranger's attempt is audited; nothing pruned


def test_prune_removes_events_before_a_past_date(write_config: WriteConfig) -> None:
    config = write_config()
    some_events(config)
    db = sqlite3.connect(config.parent / "argobox.db", isolation_level=None)
    first_two_at = [row[0] for row in db.execute("SELECT at FROM audit WHERE seq <= 2")]
    db.close()
    cutoff = datetime.fromtimestamp(max(first_two_at) + 0.0005, UTC).isoformat()

    pruned = argobox(config, "audit", "prune", "--before", cutoff, "--as", "alice")
    events = json.loads(argobox(config, "audit", "--json").stdout)
    verified = argobox(config, "audit", "verify")

    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("pruned 2 events (up to seq 2), recorded as event seq 4")
    assert [(e["seq"], e["event"]) for e in events] == [(3, "operator_refused"), (4, "pruned")]
    assert events[-1]["actor"] == "operator:alice" and events[-1]["detail"]["through_seq"] == 2
    assert verified.returncode == 0, verified.stdout
    assert verified.stdout.startswith("ok: 2 events")


def test_signed_checkpoints_with_keys_from_the_config(write_config: WriteConfig, tmp_path: Path) -> None:
    keygen = argobox(None, "audit", "keygen", "--out", str(tmp_path / "audit.pem"))
    again = argobox(None, "audit", "keygen", "--out", str(tmp_path / "audit.pem"))
    signing = write_config(extra='[audit]\nsigning_key_file = "audit.pem"\n')
    some_events(signing)
    signed = argobox(signing, "audit", "verify")
    verifier_only = tmp_path / "verifier.toml"
    verifier_only.write_text('[audit]\nverify_key_file = "audit.pem.pub"\n')
    checked_elsewhere = argobox(verifier_only, "audit", "verify", "--file", "/dev/null")
    export_file = tmp_path / "trail.jsonl"
    argobox(signing, "audit", "export", "--output", str(export_file))
    offline = argobox(None, "audit", "verify", "--file", str(export_file), "--key", str(tmp_path / "audit.pem.pub"))
    unsigned_writer = tmp_path / "unsigned.toml"  # the same store, used by a process without the key
    unsigned_writer.write_text(signing.read_text().replace('signing_key_file = "audit.pem"', ""))
    some_events(unsigned_writer, 1)
    not_signed = argobox(signing, "audit", "verify")

    assert keygen.returncode == 0 and "key id" in keygen.stdout and 'signing_key_file = "' in keygen.stdout
    assert again.returncode == 1 and "already exists" in again.stderr
    assert signed.returncode == 0 and "signature verified with key" in signed.stdout, signed.stdout
    assert checked_elsewhere.returncode == 0, checked_elsewhere.stdout + checked_elsewhere.stderr
    assert offline.returncode == 0 and "signature verified" in offline.stdout, offline.stdout
    assert not_signed.returncode == 1 and "signature: the checkpoint is not signed" in not_signed.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["audit", "frobnicate"], "invalid choice", id="unknown-action"),
        pytest.param(["audit", "export", "--format", "csv"], "invalid choice", id="unknown-format"),
        pytest.param(["audit", "verify", "--key", "/nonexistent/key.pub"], "cannot read", id="missing-key"),
    ],
)
def test_audit_usage_errors_exit_2(write_config: WriteConfig, args: list[str], expected: str) -> None:
    result = argobox(write_config(), *args)

    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_prune_as_an_operator_with_a_token_needs_that_token(write_config: WriteConfig) -> None:
    token = "alice-prune-token-0123456789"
    config = write_config()
    config.write_text(
        config.read_text().replace(
            '[[operators]]\nname = "alice"',
            f'[[operators]]\nname = "alice"\ntoken_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"',
        )
    )
    some_events(config)
    now = datetime.now(UTC).isoformat()
    env = {k: v for k, v in os.environ.items() if k != "ARGOBOX_OPERATOR_TOKEN"}
    prune = [ARGOBOX, "--config", str(config), "audit", "prune", "--before", now, "--as", "alice"]

    without = subprocess.run(prune, capture_output=True, text=True, timeout=60, env=env, check=False)
    kept = json.loads(argobox(config, "audit", "--json").stdout)
    right = subprocess.run(
        prune, capture_output=True, text=True, timeout=60, env={**env, "ARGOBOX_OPERATOR_TOKEN": token}, check=False
    )
    after = json.loads(argobox(config, "audit", "--json").stdout)

    assert without.returncode == 1 and "requires a token" in without.stderr
    assert [e["event"] for e in kept] == ["operator_refused"] * 4  # three strangers, then alice without her token
    assert kept[-1]["actor"] == "operator:alice" and kept[-1]["detail"]["action"] == "prune_audit"
    assert right.returncode == 0, right.stderr
    assert [e["event"] for e in after][-1] == "pruned"
