"""Secrets kept out of what people read: error messages, logs and traces.

Configured secrets (API keys, passwords in URLs, S3 keys) are known to the process; anything
quoted from elsewhere (a provider's error body, an exception naming a URL) may contain them.
``redact`` replaces each known secret by ``***``; ``url_without_password`` drops the password
of a URL before it is shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "redact", "url_password", "url_without_password"]

REDACTED = "***"


def url_password(url: str) -> str:
    """The password in ``url`` (``scheme://user:password@host``), or ``""``."""
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def url_without_password(url: str) -> str:
    """``url`` with its password replaced by ``***`` (unchanged when it has none)."""
    password = url_password(url)
    if not password:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.replace(f":{password}@", f":{REDACTED}@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***`` (longest first, so a secret that
    contains another is replaced whole). Secrets shorter than 4 characters are left alone: they
    would blank out ordinary words and protect nothing."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
