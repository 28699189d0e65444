"""Receiving bytes that arrive in pieces: into a spooled temporary file, under a size limit.

Memory stays flat: the first ``SPOOL_MEMORY_BYTES`` stay in memory, the rest goes to a
temporary file that disappears when the spool is closed.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterable
from typing import BinaryIO, cast

from ragstream_gateway.limits import claimed_media_type, receiving_limit, too_large
from ragstream_gateway.settings import GatewaySettings
from ragstream_gateway.tenant_limits import ByteQuota

__all__ = ["SPOOL_MEMORY_BYTES", "new_spool", "spool_stream"]

SPOOL_MEMORY_BYTES = 1024 * 1024


def new_spool() -> BinaryIO:
    """An empty spool: in memory up to ``SPOOL_MEMORY_BYTES``, then on disk; the caller closes it."""
    return cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES))


async def spool_stream(
    chunks: AsyncIterable[bytes], *, file_name: str, settings: GatewaySettings, quota: ByteQuota | None = None
) -> tuple[BinaryIO, int]:
    """The received bytes in a spool positioned at 0, and their count.

    Raises ``UploadTooLarge`` as soon as the bytes pass the limit of the type ``file_name``
    names, and ``QuotaExceeded`` as soon as they pass what is left of the tenant's ``quota``,
    without reading the rest; the spool is closed then, and on any other error.
    """
    limit = receiving_limit(file_name, settings)
    spool = new_spool()
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large(claimed_media_type(file_name), limit)
            if quota is not None and size > quota.left:
                raise quota.refusal(file_name, size)
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool, size
