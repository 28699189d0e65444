"""Document tags and the retrieval filters on them and on dates: one definition for every service.

A document carries a set of tags (set at upload, replaced with ``PATCH /v1/documents/{id}``);
chat requests may filter on them (any-of) and on the version's creation date. Tags are
compared lower-cased, with surrounding white space removed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ragstream_core.errors import UnprocessableInput

MAX_TAGS = 32
MAX_TAG_LENGTH = 64
ACCEPTED = (
    f"at most {MAX_TAGS} tags of 1-{MAX_TAG_LENGTH} characters each: letters, digits, spaces and"
    " '_', '-', '.', ':', '/', '+', starting with a letter or digit (compared lower-cased)"
)
_TAG = re.compile(r"^[^\W_][\w .:/+-]*$")


def clean_tags(values: Iterable[str], *, split_commas: bool = False) -> list[str]:
    """``values`` as stored tags: trimmed, lower-cased, unique, in their first order.

    ``split_commas``: a value may hold several tags separated by commas (a form field).
    Raises ``UnprocessableInput`` (422) naming the offending tag and what is accepted.
    """
    tags: list[str] = []
    for value in values:
        for part in value.split(",") if split_commas else [value]:
            tag = unicodedata.normalize("NFC", part).strip().lower()
            if not tag and split_commas:
                continue  # "a, b," or an empty form field
            if not tag or len(tag) > MAX_TAG_LENGTH or not _TAG.match(tag):
                raise UnprocessableInput(f"tag {part!r} is not accepted; accepted: {ACCEPTED}", accepted=ACCEPTED)
            if tag not in tags:
                tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise UnprocessableInput(f"{len(tags)} tags given; accepted: {ACCEPTED}", accepted=ACCEPTED)
    return tags


def parse_date(name: str, value: str | datetime | None, *, end: bool = False) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC ``datetime``; a time without offset is UTC.

    A date alone is its first moment (UTC), or with ``end`` its last, so ``date_to=2026-11-01``
    includes that day. Raises ``UnprocessableInput`` (422) for anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise UnprocessableInput(
                f"{name} {value!r} is not an ISO 8601 date; accepted: '2026-11-01' or '2026-11-01T12:00:00Z'",
                accepted="ISO 8601 date or date-time",
            ) from None
    if end and isinstance(value, str) and len(value.strip()) == len("2026-11-01"):
        parsed += timedelta(days=1, microseconds=-1)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def check_range(date_from: datetime | None, date_to: datetime | None) -> None:
    """Refuse a range that ends before it starts (422)."""
    if date_from is not None and date_to is not None and date_to < date_from:
        raise UnprocessableInput(
            f"date_to ({date_to.isoformat()}) is before date_from ({date_from.isoformat()})",
            accepted="date_from <= date_to",
        )
