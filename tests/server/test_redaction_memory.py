"""The redactor's memory of short texts: the same answer as without it, bounded, and never shared between redactors
that know different secrets."""

from __future__ import annotations

from argobox.server import redact
from argobox.server.redact import Redactor

SECRET = "s3cr3t-token-0123456789"


def test_a_remembered_text_is_redacted_as_the_first_time() -> None:
    redactor = Redactor([SECRET])
    text = f"Authorization: Bearer {SECRET}"
    first = redactor.text(text)
    assert SECRET not in first and redactor.text(text) == first
    assert redactor({"state": text, "password": "hunter2"}) == {"state": first, "password": redact.REDACTED}


def test_the_memory_is_bounded_and_long_texts_are_not_kept() -> None:
    redactor = Redactor([SECRET])
    for n in range(redact._REMEMBERED_TEXTS + 10):  # pyright: ignore[reportPrivateUsage]
        redactor.text(f"state {n}")
    redactor.text("x" * (redact._REMEMBERED_CHARS + 1) + SECRET)  # pyright: ignore[reportPrivateUsage]
    kept = redactor._remembered  # pyright: ignore[reportPrivateUsage]
    assert 0 < len(kept) <= redact._REMEMBERED_TEXTS  # pyright: ignore[reportPrivateUsage]
    assert all(len(text) <= redact._REMEMBERED_CHARS for text in kept)  # pyright: ignore[reportPrivateUsage]


def test_a_redactor_with_more_secrets_does_not_reuse_what_another_remembered() -> None:
    plain = Redactor()
    text = f"log line {SECRET}"
    assert plain.text(text) == text
    assert SECRET not in plain.with_secrets([SECRET]).text(text)
