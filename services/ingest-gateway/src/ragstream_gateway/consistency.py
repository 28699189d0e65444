"""The consistency check: the document registry, the object store and the index compared.

What is compared, for one tenant (optionally one collection):

- objects under ``uploads/<tenant>/``, ``chunks/<tenant>/`` and ``staging/<tenant>/`` against the
  registry: an object no live document (or open direct upload) refers to is an ``orphan_object``;
  a version of a live document whose source object is gone is a ``missing_object``;
- the index's inventory (points per document version, from the embedder over NATS) against the
  registry: points of a document or version the registry does not have, has deleted, or no
  longer serves (failed, cancelled, superseded) are ``orphan_points``; an indexed version with
  fewer points than chunks is ``missing_points``, with points lacking their dense or sparse
  vector ``incomplete_vectors``, with points not active ``inactive_points``.

Work in flight is never a problem: a document with a version still processing is skipped, and
objects younger than ``min_age_s`` and documents deleted less than ``min_age_s`` ago are left alone
(an upload or a delete may be between its steps).

Repair deletes orphan objects and orphan points and re-embeds the versions whose points are
missing, incomplete or inactive (the ordinary re-embed: a new version of the same bytes); a
missing source object cannot be repaired (upload the file again). With a collection given,
only what can be told to belong to that collection is checked: an object no row of any
collection refers to is reported by the check of the whole tenant.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import nats.errors
import structlog
from google.protobuf.message import Message

from ragstream_core.errors import DependencyUnavailable, NotFound, RagstreamError
from ragstream_core.events import DELETE_POINTS_SUBJECT, INVENTORY_SUBJECT
from ragstream_core.proto.ragstream.v1.inventory_pb2 import (
    DeletePointsRequest,
    DeletePointsResponse,
    InventoryRequest,
    InventoryResponse,
    VersionPoints,
)
from ragstream_core.storage import ObjectStore
from ragstream_gateway.consistency_repository import OPEN_UPLOADS, ConsistencyRepository, RegistryVersion

log = structlog.get_logger(__name__)
R = TypeVar("R", bound=Message)

ORPHAN_OBJECT = "orphan_object"
ORPHAN_POINTS = "orphan_points"
MISSING_OBJECT = "missing_object"
MISSING_POINTS = "missing_points"
INCOMPLETE_VECTORS = "incomplete_vectors"
INACTIVE_POINTS = "inactive_points"
#: kinds a re-embed repairs
REEMBED_KINDS = frozenset({MISSING_POINTS, INCOMPLETE_VECTORS, INACTIVE_POINTS})
#: versions that no longer serve: points of them are leftovers
RETIRED = frozenset({"failed", "cancelled", "superseded", "deleted"})

_CHUNKS_KEY = re.compile(r"^chunks/[^/]+/(?P<document>[^/]+)/v(?P<version>\d+)\.json$")


class IndexAdmin(Protocol):
    """The embedder's index, as the check needs it."""

    async def inventory(self, tenant_id: str, collection_id: str | None) -> list[VersionPoints]: ...

    async def delete_points(self, tenant_id: str, document_id: str, versions: list[int], up_to_version: int) -> int: ...


class Reembedder(Protocol):
    async def __call__(self, tenant_id: str, document_id: str) -> None: ...


@dataclass
class Problem:
    kind: str
    collection_id: str | None
    document_id: str | None
    version: int | None
    key: str | None
    detail: str
    repairable: bool
    #: for orphan points: the versions to remove (empty: the whole document, for good)
    versions: list[int] = field(default_factory=list, repr=False)
    #: for a deleted document's points: its last version (the index refuses any up to it)
    up_to_version: int = field(default=0, repr=False)

    def body(self) -> dict[str, Any]:
        out = asdict(self)
        del out["versions"], out["up_to_version"]
        return out


@dataclass
class Report:
    documents: int = 0
    versions: int = 0
    objects: int = 0
    points: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {
            "consistent": not self.problems,
            "checked": {
                "documents": self.documents,
                "versions": self.versions,
                "objects": self.objects,
                "points": self.points,
            },
            "problems": [p.body() for p in self.problems],
            "repaired": [p.body() for p in self.repaired],
        }


class ConsistencyCheck:
    def __init__(
        self,
        registry: ConsistencyRepository,
        objects: ObjectStore,
        index: IndexAdmin,
        *,
        min_age_s: float,
    ) -> None:
        self.registry = registry
        self.objects = objects
        self.index = index
        self.min_age = timedelta(seconds=min_age_s)

    async def check(self, tenant_id: str, collection_id: str | None = None) -> Report:
        """Compare; nothing is changed. Raises ``NotFound`` for a collection never created."""
        if collection_id is not None and not await self.registry.collection_exists(tenant_id, collection_id):
            raise NotFound(f"collection {collection_id!r} does not exist")
        now = datetime.now(UTC)
        rows = await self.registry.versions(tenant_id)
        documents: dict[str, list[RegistryVersion]] = defaultdict(list)
        for row in rows:
            documents[row.document_id].append(row)
        in_scope = {d for d, vs in documents.items() if collection_id is None or vs[0].collection_id == collection_id}
        in_flight = {d for d, vs in documents.items() if any(v.status == "processing" for v in vs)}
        live = {d for d, vs in documents.items() if vs[0].deleted_at is None}
        report = Report(documents=len(in_scope & live), versions=sum(len(documents[d]) for d in in_scope & live))
        stored = await self._objects(tenant_id, collection_id, documents, in_scope, live, now, report)
        sources = {d: all(v.object_key in stored for v in documents[d]) for d in documents}
        inventory = await self.index.inventory(tenant_id, collection_id)
        seen: dict[str, dict[int, VersionPoints]] = defaultdict(dict)
        for entry in inventory:
            seen[entry.document_id][entry.version] = entry
            report.points += entry.points
        for document_id, by_version in seen.items():
            self._points(document_id, by_version, documents.get(document_id, []), in_flight, sources, now, report)
        for document_id in sorted(in_scope & live - in_flight):
            for row in documents[document_id]:
                if row.status == "indexed" and (row.chunk_count or 0) > 0 and row.version not in seen[document_id]:
                    report.problems.append(
                        _reembed_problem(
                            MISSING_POINTS,
                            row,
                            f"version is indexed with {row.chunk_count} chunks but has no points in the index",
                            sources[document_id],
                        )
                    )
        report.problems.sort(
            key=lambda p: (p.kind, p.collection_id or "", p.document_id or "", p.version or 0, p.key or "")
        )
        return report

    async def _objects(
        self,
        tenant_id: str,
        collection_id: str | None,
        documents: dict[str, list[RegistryVersion]],
        in_scope: set[str],
        live: set[str],
        now: datetime,
        report: Report,
    ) -> set[str]:
        """Report orphan and missing objects; returns the keys stored under the tenant's prefixes."""
        live_keys = {v.object_key for d in live for v in documents[d]}
        scope_keys = {v.object_key for d in in_scope for v in documents[d]}
        uploads = await self.registry.staged_uploads(tenant_id)
        open_staged = {u.staging_key for u in uploads if u.status in OPEN_UPLOADS}
        staged_in_scope = {u.staging_key for u in uploads if collection_id is None or u.collection_id == collection_id}
        stored: set[str] = set()
        for prefix in (f"uploads/{tenant_id}/", f"chunks/{tenant_id}/", f"staging/{tenant_id}/"):
            async for info in self.objects.list_objects(prefix):
                stored.add(info.key)
                owner = _owner(info.key, prefix, documents, scope_keys, staged_in_scope, in_scope, collection_id)
                if owner is None:
                    continue
                report.objects += 1
                why = _orphan_reason(info.key, prefix, documents, live, live_keys, open_staged)
                if why is None or now - info.modified < self.min_age:
                    continue
                document_id, version = _key_document(info.key)
                report.problems.append(
                    Problem(ORPHAN_OBJECT, owner or None, document_id, version, info.key, why, repairable=True)
                )
        for document_id in sorted(in_scope & live):
            for row in documents[document_id]:
                if row.object_key not in stored and not await self.objects.exists(row.object_key):
                    report.problems.append(
                        Problem(
                            MISSING_OBJECT,
                            row.collection_id,
                            row.document_id,
                            row.version,
                            row.object_key,
                            f"the source object of version {row.version} ({row.status}) is not in the store;"
                            " upload the file again",
                            repairable=False,
                        )
                    )
                else:
                    stored.add(row.object_key)
        return stored

    def _points(
        self,
        document_id: str,
        by_version: dict[int, VersionPoints],
        rows: list[RegistryVersion],
        in_flight: set[str],
        sources: dict[str, bool],
        now: datetime,
        report: Report,
    ) -> None:
        collection = next(iter(by_version.values())).collection_id
        counts = ", ".join(f"v{v}: {e.points}" for v, e in sorted(by_version.items()))
        if not rows:
            report.problems.append(
                Problem(
                    ORPHAN_POINTS, collection, document_id, None, None,
                    f"points of a document the registry does not know ({counts})", True, sorted(by_version),
                )
            )  # fmt: skip
            return
        if rows[0].deleted_at is not None:
            if now - rows[0].deleted_at >= self.min_age:
                report.problems.append(
                    Problem(
                        ORPHAN_POINTS, collection, document_id, None, None,
                        f"points of a deleted document ({counts})", True, [],
                        max(r.version for r in rows),
                    )
                )  # fmt: skip
            return
        if document_id in in_flight:
            return
        versions = {r.version: r for r in rows}
        for version, entry in sorted(by_version.items()):
            row = versions.get(version)
            if row is None or row.status in RETIRED:
                what = "unknown to the registry" if row is None else row.status
                report.problems.append(
                    Problem(
                        ORPHAN_POINTS, collection, document_id, version, None,
                        f"{entry.points} points of version {version}, which is {what}", True, [version],
                    )
                )  # fmt: skip
                continue
            if row.status != "indexed":
                continue
            expected = row.chunk_count or 0
            source = sources.get(document_id, False)
            if entry.points < expected:
                report.problems.append(
                    _reembed_problem(MISSING_POINTS, row, f"{entry.points} of {expected} points in the index", source)
                )
            elif entry.missing_dense or entry.missing_sparse:
                report.problems.append(
                    _reembed_problem(
                        INCOMPLETE_VECTORS,
                        row,
                        f"{entry.missing_dense} points without their dense vector,"
                        f" {entry.missing_sparse} without their sparse vector",
                        source,
                    )
                )
            elif not entry.active or entry.active_points < entry.points:
                report.problems.append(
                    _reembed_problem(
                        INACTIVE_POINTS,
                        row,
                        f"{entry.points - entry.active_points} of {entry.points} points are not searchable",
                        source,
                    )
                )

    async def repair(self, tenant_id: str, collection_id: str | None, reembed: Reembedder) -> Report:
        """Repair what can be repaired, then check again: ``problems`` is what remains."""
        found = await self.check(tenant_id, collection_id)
        repaired: list[Problem] = []
        reembedded: set[str] = set()
        for problem in found.problems:
            if not problem.repairable:
                continue
            try:
                if problem.kind == ORPHAN_OBJECT:
                    assert problem.key is not None
                    await self.objects.delete(problem.key)
                elif problem.kind == ORPHAN_POINTS:
                    assert problem.document_id is not None
                    await self.index.delete_points(
                        tenant_id, problem.document_id, problem.versions, problem.up_to_version
                    )
                elif problem.kind in REEMBED_KINDS:
                    assert problem.document_id is not None
                    if problem.document_id not in reembedded:
                        await reembed(tenant_id, problem.document_id)
                        reembedded.add(problem.document_id)
                else:
                    continue
            except (RagstreamError, OSError) as exc:
                log.warning("consistency.repair_failed", kind=problem.kind, key=problem.key, error=str(exc))
                continue
            repaired.append(problem)
        log.info("consistency.repaired", tenant_id=tenant_id, collection_id=collection_id, repaired=len(repaired))
        after = await self.check(tenant_id, collection_id)
        after.repaired = repaired
        return after


def _reembed_problem(kind: str, row: RegistryVersion, detail: str, source: bool) -> Problem:
    if not source:
        detail += "; not repairable: the source object is gone (upload the file again)"
    return Problem(kind, row.collection_id, row.document_id, row.version, None, detail, repairable=source)


def _key_document(key: str) -> tuple[str | None, int | None]:
    match = _CHUNKS_KEY.match(key)
    return (match["document"], int(match["version"])) if match else (None, None)


def _orphan_reason(
    key: str,
    prefix: str,
    documents: dict[str, list[RegistryVersion]],
    live: set[str],
    live_keys: set[str],
    open_staged: set[str],
) -> str | None:
    """Why the object at ``key`` is an orphan, or ``None`` if something refers to it."""
    if prefix.startswith("uploads/"):
        return None if key in live_keys else "no version of a live document refers to this object"
    if prefix.startswith("staging/"):
        return None if key in open_staged else "no open direct upload refers to this staged object"
    document_id, version = _key_document(key)
    if document_id is None:
        return "not the key of a document version's chunks"
    if document_id not in documents:
        return "chunks of a document the registry does not know"
    if document_id not in live:
        return "chunks of a deleted document"
    if all(v.version != version for v in documents[document_id]):
        return f"chunks of version {version}, which the registry does not have"
    return None


def _owner(
    key: str,
    prefix: str,
    documents: dict[str, list[RegistryVersion]],
    scope_keys: set[str],
    staged_in_scope: set[str],
    in_scope: set[str],
    collection_id: str | None,
) -> str | None:
    """The collection the object can be told to belong to ("" if none); ``None``: outside the scope."""
    if prefix.startswith("chunks/"):
        document_id, _ = _key_document(key)
        if document_id is not None and document_id in documents:
            in_collection = collection_id is None or document_id in in_scope
            return documents[document_id][0].collection_id if in_collection else None
        return "" if collection_id is None else None
    if collection_id is None:
        return ""
    in_collection = key in scope_keys if prefix.startswith("uploads/") else key in staged_in_scope
    return collection_id if in_collection else None


class Requester(Protocol):
    async def request(self, subject: str, request: Message, reply_type: type[R], *, timeout_s: float) -> R: ...


class NatsIndexAdmin:
    """``IndexAdmin`` over NATS request/reply, answered by the embedder."""

    def __init__(self, bus: Requester, *, timeout_s: float) -> None:
        self.bus = bus
        self.timeout_s = timeout_s

    async def _ask(self, subject: str, request: Message, reply_type: type[R]) -> R:
        try:
            return await self.bus.request(subject, request, reply_type, timeout_s=self.timeout_s)
        except (nats.errors.Error, TimeoutError) as exc:
            raise DependencyUnavailable(
                f"the embedder did not answer {subject} within {self.timeout_s:g}s: {exc or type(exc).__name__}"
            ) from exc

    async def inventory(self, tenant_id: str, collection_id: str | None) -> list[VersionPoints]:
        versions: list[VersionPoints] = []
        after = ""
        while True:
            request = InventoryRequest(tenant_id=tenant_id, collection_id=collection_id or "", after_document_id=after)
            page = await self._ask(INVENTORY_SUBJECT, request, InventoryResponse)
            if page.error:
                raise DependencyUnavailable(f"the index inventory failed: {page.error}")
            versions.extend(page.versions)
            if not page.next_after_document_id:
                return versions
            after = page.next_after_document_id

    async def delete_points(self, tenant_id: str, document_id: str, versions: list[int], up_to_version: int) -> int:
        request = DeletePointsRequest(
            tenant_id=tenant_id, document_id=document_id, versions=versions, up_to_version=up_to_version
        )
        reply = await self._ask(DELETE_POINTS_SUBJECT, request, DeletePointsResponse)
        if reply.error:
            raise DependencyUnavailable(f"deleting points of {document_id!r} failed: {reply.error}")
        return reply.removed
