"""Object store on S3 or MinIO (production), through the ``minio`` client."""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import BinaryIO
from urllib.parse import urlsplit

from minio import Minio
from minio.error import S3Error

from ragstream_core.errors import DependencyUnavailable, NotFound
from ragstream_core.storage.listing import PAGE, ObjectInfo
from ragstream_core.storage.traced import traced

_PART = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


class S3ObjectStore:
    """Objects in one bucket, created on first use. Multipart uploads keep memory flat."""

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str = "us-east-1",
        public_url: str = "",
    ) -> None:
        self.bucket = bucket
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region)
        # presigned URLs are signed for the host clients use: the public one if the endpoint is
        # private (an in-cluster Service). Signing needs no connection (the region is given).
        self.signer = self.client
        if public_url:
            public = urlsplit(public_url)
            self.signer = Minio(
                public.netloc,
                access_key=access_key,
                secret_key=secret_key,
                secure=public.scheme == "https",
                region=region,
            )
        self._bucket_ready = False

    def _ensure_bucket(self) -> None:
        if not self._bucket_ready:
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            self._bucket_ready = True

    def _put(self, key: str, source: BinaryIO, size: int) -> None:
        self._ensure_bucket()
        self.client.put_object(self.bucket, key, source, length=size, part_size=_PART)

    @traced("put file", "s3")
    async def put_file(self, key: str, source: BinaryIO, size: int) -> None:
        await asyncio.to_thread(self._put, key, source, size)

    @traced("put bytes", "s3")
    async def put_bytes(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, io.BytesIO(data), len(data))

    def _get(self, key: str) -> bytes:
        self._ensure_bucket()
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise NotFound(f"object {key!r} is not in bucket {self.bucket!r}") from None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    @traced("get bytes", "s3")
    async def get_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get, key)

    def _read_into(self, key: str, target: BinaryIO) -> int:
        self._ensure_bucket()
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise NotFound(f"object {key!r} is not in bucket {self.bucket!r}") from None
            raise
        size = 0
        try:
            for chunk in response.stream(_CHUNK):
                target.write(chunk)
                size += len(chunk)
        finally:
            response.close()
            response.release_conn()
        return size

    @traced("read into", "s3")
    async def read_into(self, key: str, target: BinaryIO) -> int:
        return await asyncio.to_thread(self._read_into, key, target)

    def _size(self, key: str) -> int | None:
        self._ensure_bucket()
        try:
            return self.client.stat_object(self.bucket, key).size
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise

    async def size(self, key: str) -> int | None:
        return await asyncio.to_thread(self._size, key)

    async def presigned_put_url(self, key: str, *, expires_s: float) -> str:
        """A URL that lets its holder PUT this one object until it expires (SigV4 query signature)."""

        def presign() -> str:
            self._ensure_bucket()
            return self.signer.presigned_put_object(self.bucket, key, expires=timedelta(seconds=expires_s))

        return await asyncio.to_thread(presign)

    def _exists(self, key: str) -> bool:
        self._ensure_bucket()
        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return False
            raise
        return True

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._exists, key)

    @traced("delete", "s3")
    async def delete(self, key: str) -> None:
        def remove() -> None:
            self._ensure_bucket()
            self.client.remove_object(self.bucket, key)

        await asyncio.to_thread(remove)

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self._ensure_bucket)
        except Exception as exc:
            raise DependencyUnavailable(f"S3 bucket {self.bucket!r} is unreachable: {exc}") from exc

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        await asyncio.to_thread(self._ensure_bucket)
        # the client pages through ListObjectsV2 lazily: each slice is taken on a worker thread
        listing = self.client.list_objects(self.bucket, prefix=prefix, recursive=True)

        def next_page() -> list[ObjectInfo] | None:
            page = list(itertools.islice(listing, PAGE))
            if not page:
                return None
            return [
                ObjectInfo(
                    str(o.object_name),
                    int(o.size or 0),
                    o.last_modified.astimezone(UTC) if o.last_modified else datetime.now(UTC),
                )
                for o in page
                if o.object_name and not o.is_dir
            ]

        while (page := await asyncio.to_thread(next_page)) is not None:
            for info in page:
                yield info
