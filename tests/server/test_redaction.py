"""The one Redactor on the ways out that the end-to-end secrets test does not reach deterministically: log
records (message, arguments and tracebacks) and audit fields other than the detail."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "10:02:03 GET /v1 X-Api-Key: abc123 200 OK", "10:02:03 GET /v1 X-Api-Key: <redacted> 200 OK", id="mid-line"
        ),
        pytest.param(
            'curl -H "Authorization: Bearer abc" -H "x-auth-token:t0k" http://127.0.0.1/',
            'curl -H "Authorization: <redacted>" -H "x-auth-token:<redacted>" http://127.0.0.1/',
            id="curl-headers",
        ),
        pytest.param(
            'body {"api_key": "abc123", "q": "oslo"}', 'body {"api_key": "<redacted>", "q": "oslo"}', id="json"
        ),
        pytest.param('{"password":"x","user":"bob"}', '{"password":"<redacted>","user":"bob"}', id="json-tight"),
        pytest.param(
            '{"pin": 1234, "clientSecret": "a\\"b"}', '{"pin": 1234, "clientSecret": "<redacted>"}', id="json-esc"
        ),
        pytest.param("{'access_token': 'a.b.c', 'n': 1}", "{'access_token': '<redacted>', 'n': 1}", id="python-repr"),
        pytest.param('"{\\"token\\": \\"abc\\"}"', '"{\\"token\\": \\"<redacted>\\"}"', id="json-in-json"),
        pytest.param('{"token": ""}', '{"token": ""}', id="json-empty"),
        pytest.param("status: X-Api-Key: abc123", "status: X-Api-Key: <redacted>", id="header-after-a-header"),
        pytest.param("a:b token:abc:def c", "a:b token:<redacted> c", id="value-with-colons"),
        pytest.param(
            "'at 10:02 X-Api-Key: abc\\xff\\n next'",
            "'at 10:02 X-Api-Key: <redacted>\\n next'",
            id="value-ends-at-an-escaped-line-break",
        ),
        pytest.param(
            "connecting to redis://:hunter2@redis:6379/0",
            "connecting to redis://:<redacted>@redis:6379/0",
            id="url-empty-user",
        ),
        pytest.param("amqp://guest:guest@mq:5672", "amqp://guest:<redacted>@mq:5672", id="url-user"),
    ],
)
def test_credentials_in_the_middle_of_text_json_and_urls_are_redacted(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Author: Jane, at 12:30:45 on host nas", id="author-and-clock"),
        pytest.param("Tokens: 5 used, keyboard: us, monkey: 3, sigma: 0.2", id="lookalike-names"),
        pytest.param('{"author": "jane", "design": "flat", "keys": 3, "monkey": "x"}', id="json-lookalikes"),
        pytest.param("see http://127.0.0.1:8123/api and mailto:bob@example", id="urls-without-credentials"),
        pytest.param("Traceback: File 'x.py', line 3: in main", id="traceback"),
        pytest.param('{"state": "on", "brightness": 128}', id="json-plain"),
        pytest.param("redis://redis:6379 ok", id="url-no-user"),
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().text(text) == text


def test_secret_mapping_keys_cover_signatures_and_app_ids() -> None:
    assert Redactor()({"signature": "x", "appid": "y", "authSig": "z", "entity_picture": "/a.png"}) == {
        "signature": "<redacted>",
        "appid": "<redacted>",
        "authSig": "<redacted>",
        "entity_picture": "/a.png",
    }


@pytest.mark.parametrize(
    "sentence",
    [
        "broken at seq 4: signature: the checkpoint is not signed",
        "agent 'x' requires a token: set ARGOBOX_AGENT_TOKEN",
        "operators without a token: alice, bob",
        "No Home Assistant token: the operator must set ARGOBOX_HA_TOKEN",
    ],
)
def test_a_sentence_that_names_a_credential_word_keeps_its_words(sentence: str) -> None:
    """ArgoBox's own messages name tokens and signatures; a lower-case word after `token:` in the middle of a line is
    prose, not a header's value (a header-spelt name, or a value with a digit, capital or symbol, still goes)."""
    assert Redactor().text(sentence) == sentence
    assert Redactor().text(sentence + "; also token: s3cr3t here").endswith("also token: <redacted> here")


def test_a_text_under_a_credential_name_is_hidden_in_a_mapping_as_in_text() -> None:
    """`jwt`, `pwd`, `key` and `appkey` are credential names in text (`"jwt": "..."`); a mapping under those names
    is hidden the same way, so the structured answer and its text agree. Other values under them stay."""
    r = Redactor()
    found = r({"jwt": "eyJhbGciOi.x.y", "labels": {"pwd": "hunter2", "com.example.appkey": "k-123"}, "key": "s3cr"})
    kept = r({"key": None, "pwd": "", "enabled": False, "keys": 3, "monkey": "banana"})

    assert found == {
        "jwt": "<redacted>",
        "labels": {"pwd": "<redacted>", "com.example.appkey": "<redacted>"},
        "key": "<redacted>",
    }
    assert kept == {"key": None, "pwd": "", "enabled": False, "keys": 3, "monkey": "banana"}


def test_an_answer_redacted_once_is_still_redacted_as_text() -> None:
    """A read's result redacted and serialised once (for the answer and the stored outcome) is shown to the agent
    only after the text pass every answer gets."""
    from argobox.server.mediation.outcome import CallStatus, Outcome
    from argobox.server.transport.agent import _result  # pyright: ignore[reportPrivateUsage]

    result = {"note": "pulled with pwd=hunter2", "session": {"jwt": "abc123secretvalue"}}  # as given: not redacted
    outcome = Outcome[Any](status=CallStatus.SUCCEEDED, message="succeeded", result=result)
    answer = _result(outcome.with_redacted_result(json.dumps(result, sort_keys=True)), Redactor())
    text = answer.content[0].text  # type: ignore[union-attr]

    assert "abc123secretvalue" not in text and "hunter2" not in text
