"""The one Redactor on the ways out that the end-to-end secrets test does not reach deterministically: log
records (message, arguments and tracebacks) and audit fields other than the detail."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import anyio
import pytest

from argobox.server.redact import RedactingFormatter, Redactor
from argobox.server.store import Event, Store

SECRET = "hunter2-configured-secret"


def test_log_lines_are_redacted_including_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(Redactor([SECRET]), "argobox: %(levelname)s %(message)s"))
    logger = logging.getLogger("argobox.test-redaction")
    logger.addHandler(handler)
    try:
        logger.error("token %s and https://user:%s@host/", SECRET, "pa55word")
        try:
            raise RuntimeError(f"failed with Authorization: Bearer {SECRET}")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()

    assert SECRET not in text and "pa55word" not in text
    assert "token <redacted> and https://user:<redacted>@host/" in text
    assert "RuntimeError" in text  # the traceback is still there, redacted


@pytest.mark.anyio
async def test_every_audit_field_is_redacted_not_only_the_detail(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "s.db", clock=lambda: 1.0, redactor=Redactor([SECRET])) as store:
        await store.audit(
            [Event(event="refused", actor=f"operator:{SECRET}", detail={"reason": SECRET})],
            request_id=f"id-{SECRET}",
            agent="openclaw",
            tool=f"x{SECRET}",
        )
        (event,) = await store.audit_trail()

    assert SECRET not in repr(event)
    stored = [await p.read_bytes() async for p in anyio.Path(tmp_path).iterdir() if await p.is_file()]
    assert stored and SECRET.encode() not in b"".join(stored)


PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nq1w2e3r4t5y6==\n"
    "-----END PRIVATE KEY-----\n"
)


def test_every_line_of_a_multi_line_secret_is_redacted_and_the_value_whole() -> None:
    redact = Redactor([PEM])

    assert redact.text("key: MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7") == "key: <redacted>"
    assert redact.text("tail q1w2e3r4t5y6== end") == "tail <redacted> end"
    assert redact.text(f"whole:{PEM}!") == "whole:<redacted>!"
    assert Redactor(["ab\ncd\nlong-enough-line"]).text("ab cd long-enough-line") == "ab cd <redacted>"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://h/cb?client_secret=s3cr3t&state=1", "https://h/cb?client_secret=<redacted>&state=1"),
        ("GET /w?APIKEY=abc&appid=123&q=oslo", "GET /w?APIKEY=<redacted>&appid=<redacted>&q=oslo"),
        ("/cam?authSig=xyz&Signature=1", "/cam?authSig=<redacted>&Signature=<redacted>"),
        ("X-Api-Key: abc def\nHost: nas", "X-Api-Key: <redacted>\nHost: nas"),
        ("x-auth-token:abc", "x-auth-token:<redacted>"),
        ("access_token=a.b.c more", "access_token=<redacted> more"),
        ("design=1 monkey=2 author=me", "design=1 monkey=2 author=me"),
        ("Author: Jane\nTokens used 5", "Author: Jane\nTokens used 5"),
    ],
)
def test_credentials_are_found_by_what_their_name_says(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


def test_secret_mapping_keys_cover_signatures_and_app_ids() -> None:
    assert Redactor()({"signature": "x", "appid": "y", "authSig": "z", "entity_picture": "/a.png"}) == {
        "signature": "<redacted>",
        "appid": "<redacted>",
        "authSig": "<redacted>",
        "entity_picture": "/a.png",
    }
