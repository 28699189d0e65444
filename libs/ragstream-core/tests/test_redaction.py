"""Secrets replaced in what is shown."""

from __future__ import annotations

from ragstream_core.redaction import redact, url_password, url_without_password


def test_every_known_secret_is_replaced() -> None:
    assert redact("key sk-abc123 and pw hunter22", ["sk-abc123", "hunter22"]) == "key *** and pw ***"


def test_a_secret_containing_another_is_replaced_whole() -> None:
    assert redact("token sk-abc123-long", ["sk-abc123", "sk-abc123-long"]) == "token ***"


def test_empty_and_tiny_secrets_change_nothing() -> None:
    assert redact("a plain sentence", ["", "a"]) == "a plain sentence"


def test_the_password_of_a_url_is_found_and_hidden() -> None:
    url = "postgresql://ragstream:s3cr3t-pw@db.internal:5432/ragstream"

    assert url_password(url) == "s3cr3t-pw"
    assert url_without_password(url) == "postgresql://ragstream:***@db.internal:5432/ragstream"


def test_a_url_without_a_password_is_unchanged() -> None:
    assert url_without_password("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
    assert url_password("not a url") == ""
