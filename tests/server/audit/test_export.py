"""`argobox audit export`: one JSON object per line, verified offline, tampering found, signatures carried."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from argobox.server.audit import load_signer, load_verify_key, verify_export, write_keypair
from argobox.server.mediation.audit_trail import export_jsonl
from argobox.server.redact import Redactor
from tests.server.audit.trails import broken, make_trail, rows

pytestmark = pytest.mark.anyio


def export(path: Path, out: Path, *, since: float | None = None, redactor: Redactor | None = None) -> list[str]:
    with out.open("w") as file:
        export_jsonl(path, file, since=since, redact=redactor or Redactor())
    return out.read_text().splitlines()


async def test_export_is_one_json_object_per_line_and_verifies_offline(tmp_path: Path) -> None:
    path, out = tmp_path / "s.db", tmp_path / "export.jsonl"
    await make_trail(path, 4)
    lines = export(path, out)
    objects = [json.loads(line) for line in lines]

    assert len(objects) == 5 and objects[-1]["checkpoint"]["seq"] == 4
    assert {
        "seq",
        "at",
        "request_id",
        "event",
        "actor",
        "agent",
        "tool",
        "detail",
        "prev_hash",
        "hash",
        "at_epoch",
    } <= set(objects[0])
    report = verify_export(out, key=None)
    assert report.ok, report.text()
    assert report.text().splitlines()[0] == f"ok: 4 events, head {objects[3]['hash']}"


def edit_second(lines: list[str]) -> list[str]:
    return [lines[0], lines[1].replace("event 1", "event X"), *lines[2:]]


def drop_second(lines: list[str]) -> list[str]:
    return [lines[0], *lines[2:]]


def swap_second_and_third(lines: list[str]) -> list[str]:
    return [lines[0], lines[2], lines[1], *lines[3:]]


def drop_the_tail(lines: list[str]) -> list[str]:
    return [*lines[:2], lines[-1]]


def edit_the_shown_time(lines: list[str]) -> list[str]:
    return [lines[0].replace('"at":"2027', '"at":"2028'), *lines[1:]]


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param(edit_second, (2, "edited"), id="edited"),
        pytest.param(drop_second, (2, "deleted"), id="deleted"),
        pytest.param(swap_second_and_third, (3, "reordered"), id="reordered"),
        pytest.param(drop_the_tail, (3, "truncated"), id="truncated"),
        pytest.param(edit_the_shown_time, (None, "edited"), id="shown-time"),
    ],
)
async def test_tampered_export_is_detected_offline(
    tmp_path: Path, tamper: Callable[[list[str]], list[str]], expected: tuple[int | None, str]
) -> None:
    path, out = tmp_path / "s.db", tmp_path / "export.jsonl"
    await make_trail(path, 4)
    lines = export(path, out)
    out.write_text("\n".join(tamper(lines)) + "\n")

    assert broken(verify_export(out, key=None)) == expected


async def test_partial_export_since_a_date_verifies_from_its_first_event(tmp_path: Path) -> None:
    path, out = tmp_path / "s.db", tmp_path / "export.jsonl"
    await make_trail(path, 6)
    since = rows(path)[3]["at"]
    lines = export(path, out, since=since)
    report = verify_export(out, key=None)

    assert [json.loads(line).get("seq") for line in lines[:-1]] == [4, 5, 6]
    assert report.ok and "starts at seq 4" in report.text(), report.text()


async def test_events_redacted_again_on_export_are_flagged_not_called_edited(tmp_path: Path) -> None:
    path, out = tmp_path / "s.db", tmp_path / "export.jsonl"
    await make_trail(path, 3)
    lines = export(path, out, redactor=Redactor(["event 1"]))
    report = verify_export(out, key=None)

    assert "event 1" not in "\n".join(lines)
    assert [json.loads(line).get("redacted_on_export") for line in lines[:-1]] == [None, True, None]
    assert report.ok and "1 events were redacted again on export" in report.text(), report.text()


async def test_signature_covers_the_export_offline(tmp_path: Path) -> None:
    path, out = tmp_path / "s.db", tmp_path / "export.jsonl"
    public, _ = write_keypair(tmp_path / "audit.pem")
    await make_trail(path, 3, signer=load_signer(tmp_path / "audit.pem"))
    lines = export(path, out)
    key = load_verify_key(public)
    good = verify_export(out, key=key)
    out.write_text("\n".join(lines[:-1]) + "\n")  # the signed checkpoint line removed

    assert good.ok, good.text()
    assert broken(verify_export(out, key=key)) == (None, "signature")
