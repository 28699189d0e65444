"""Object store in a local directory: the embedded default."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ragstream_core.errors import DependencyUnavailable, InvalidInput, NotFound
from ragstream_core.storage.listing import PAGE, ObjectInfo
from ragstream_core.storage.traced import traced

_CHUNK = 1024 * 1024


class LocalObjectStore:
    """Objects as files under ``root``; writes go to a temporary file, then rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or not key:
            raise InvalidInput(f"object key {key!r} leaves the store; keys are relative paths")
        return path

    def _write(self, key: str, source: BinaryIO) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @traced("put file", "local")
    async def put_file(self, key: str, source: BinaryIO, size: int) -> None:
        await asyncio.to_thread(self._write, key, source)

    @traced("put bytes", "local")
    async def put_bytes(self, key: str, data: bytes) -> None:
        import io

        await asyncio.to_thread(self._write, key, io.BytesIO(data))

    @traced("get bytes", "local")
    async def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFound(f"object {key!r} is not in the store") from None

    def _read_into(self, key: str, target: BinaryIO) -> int:
        try:
            with self._path(key).open("rb") as source:
                shutil.copyfileobj(source, target, _CHUNK)
                return source.tell()
        except FileNotFoundError:
            raise NotFound(f"object {key!r} is not in the store") from None

    @traced("read into", "local")
    async def read_into(self, key: str, target: BinaryIO) -> int:
        return await asyncio.to_thread(self._read_into, key, target)

    async def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    @traced("delete", "local")
    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DependencyUnavailable(f"object directory {self.root} is not writable: {exc}") from exc

    def _walk(self, prefix: str) -> Iterator[list[ObjectInfo]]:
        """Pages of the objects under ``prefix``; temporary files of writes in progress are skipped."""
        root = self.root.resolve()
        start = root / prefix.rsplit("/", 1)[0] if "/" in prefix else root
        if not start.resolve().is_relative_to(root):
            raise InvalidInput(f"prefix {prefix!r} leaves the store; prefixes are relative paths")
        page: list[ObjectInfo] = []
        for folder, dirs, files in os.walk(start):
            dirs.sort()
            for name in sorted(files):
                if name.startswith(".tmp-"):
                    continue
                path = Path(folder) / name
                key = path.relative_to(root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # deleted meanwhile
                    continue
                page.append(ObjectInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)))
                if len(page) >= PAGE:
                    yield page
                    page = []
        if page:
            yield page

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        pages = self._walk(prefix)
        while page := await asyncio.to_thread(next, pages, None):
            for info in page:
                yield info
