"""Object storage: uploads and parsed documents travel by key, never inside events.

``open_object_store(settings)`` picks the implementation by configuration: a local directory
(embedded default) or S3/MinIO. Both write atomically: a reader sees a whole object or none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO, Protocol

from ragstream_core.settings import CoreSettings
from ragstream_core.storage.listing import ObjectInfo
from ragstream_core.storage.local import LocalObjectStore
from ragstream_core.storage.s3 import S3ObjectStore

__all__ = ["LocalObjectStore", "ObjectInfo", "ObjectStore", "S3ObjectStore", "open_object_store"]


class ObjectStore(Protocol):
    async def put_file(self, key: str, source: BinaryIO, size: int) -> None:
        """Store ``size`` bytes read from ``source`` in chunks (memory stays flat)."""

    async def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small object."""

    async def get_bytes(self, key: str) -> bytes:
        """Read a whole object; raises ``NotFound`` if absent."""

    async def read_into(self, key: str, target: BinaryIO) -> int:
        """Copy an object into ``target`` in chunks (memory stays flat); returns its size.

        Raises ``NotFound`` if absent.
        """

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or ``None`` if it is not stored."""

    async def exists(self, key: str) -> bool:
        """Whether the object is stored."""

    async def delete(self, key: str) -> None:
        """Remove the object if present (idempotent)."""

    async def check(self) -> None:
        """Raise ``DependencyUnavailable`` when the store cannot be reached."""

    def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every stored object whose key starts with ``prefix`` (a string prefix, as in S3), a page
        at a time (memory stays flat), in no promised order; writes in progress are not listed.
        """
        ...


def open_object_store(settings: CoreSettings) -> ObjectStore:
    """The store named by ``settings.object_store``."""
    if settings.object_store == "s3":
        return S3ObjectStore(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            public_url=settings.s3_public_url,
        )
    return LocalObjectStore(settings.objects_dir)
