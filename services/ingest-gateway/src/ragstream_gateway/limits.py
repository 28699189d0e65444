"""Size limits per format: tabular files have their own (smaller) limit.

Guarantee: ``checked_media_type`` returns an upload's media type only when the upload is not
empty and within the limit of that type; otherwise it raises ``EmptyUpload``,
``UploadTooLarge`` (naming the limit that applies and why) or ``UnsupportedMediaType``.
An upload over every limit is ``UploadTooLarge`` even when its type is also wrong, as before
limits per type existed.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import BinaryIO

from ragstream_core.errors import EmptyUpload, UnsupportedMediaType, UploadTooLarge
from ragstream_gateway.media import ACCEPTED, CSV, XLSM, XLSX, detect_media_type
from ragstream_gateway.settings import GatewaySettings

__all__ = [
    "TABULAR_TYPES",
    "checked_media_type",
    "claimed_media_type",
    "receiving_limit",
    "too_large",
    "upload_limit",
]

#: media types limited by ``max_tabular_bytes``: whole tables are parsed in memory downstream.
#: ODS, Parquet, TSV and legacy XLS are named by their registered types, so that a format added
#: to ``media`` under that type is limited without a change here.
TABULAR_TYPES = frozenset(
    {
        CSV,
        XLSX,
        XLSM,
        "text/tab-separated-values",
        "application/vnd.ms-excel",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.apache.parquet",
        "application/x-parquet",
    }
)
_MIB = 1024 * 1024


def upload_limit(media_type: str | None, settings: GatewaySettings) -> int:
    """The largest accepted upload of ``media_type`` in bytes (``None``: type unknown yet).

    ``max_upload_bytes`` caps every type; ``max_tabular_bytes`` is a stricter cap for tables.
    """
    if media_type in TABULAR_TYPES:
        return min(settings.max_tabular_bytes, settings.max_upload_bytes)
    return settings.max_upload_bytes


def claimed_media_type(file_name: str) -> str | None:
    """The accepted type the name's extension names, if any (the content is checked later)."""
    return ACCEPTED.get(PurePosixPath(file_name).suffix.lower())


def receiving_limit(file_name: str, settings: GatewaySettings) -> int:
    """The limit to enforce while bytes arrive, before their content can be checked.

    Exact whenever the name has an accepted extension: the content must then be of the type
    the extension names (``detect_media_type``), and the limit follows the type.
    """
    return upload_limit(claimed_media_type(file_name), settings)


def too_large(media_type: str | None, limit: int) -> UploadTooLarge:
    """The 413 error for an upload over ``limit``, saying which limit and for which type."""
    readable = f" ({limit / _MIB:g} MiB)" if limit >= _MIB else ""
    if media_type is None:
        return UploadTooLarge(f"the upload exceeds the limit of {limit} bytes{readable}", limit_bytes=limit)
    kind = "tabular files (CSV, XLSX/XLSM, ODS, Parquet)" if media_type in TABULAR_TYPES else "this type"
    return UploadTooLarge(
        f"the upload exceeds the limit of {limit} bytes{readable} for {kind}; its type is {media_type}",
        limit_bytes=limit,
        media_type=media_type,
    )


def checked_media_type(file_name: str, source: BinaryIO, settings: GatewaySettings) -> str:
    """The media type of a seekable upload after checking its size against the limit of that type."""
    source.seek(0, os.SEEK_END)
    size = source.tell()
    source.seek(0)
    if size == 0:
        raise EmptyUpload("the uploaded file is empty (0 bytes); send a document with content")
    try:
        media_type = detect_media_type(file_name, source)
    except UnsupportedMediaType:
        if size > (ceiling := upload_limit(None, settings)):
            raise too_large(None, ceiling) from None
        raise
    if size > (limit := upload_limit(media_type, settings)):
        raise too_large(media_type, limit)
    return media_type
