"""The one Redactor on the ways out that the end-to-end secrets test does not reach deterministically: log
records (message, arguments and tracebacks) and audit fields other than the detail."""

from __future__ import annotations

import io
import logging
from pathlib import Path

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
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
