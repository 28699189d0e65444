"""The gateway's tables: collections, documents, their versions, deletions and the audit log.

Guarantees: every query is scoped by tenant; uploads to one collection are serialised by a
transaction-scoped advisory lock, so the content check ("same bytes → the existing version"),
the name → document mapping and version numbering are atomic even for simultaneous uploads;
every change writes its audit row in the same transaction.
"""

from __future__ import annotations

import json
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row
from psycopg_pool import AsyncConnectionPool

from ragstream_core.errors import Conflict, InvalidInput, NotFound


@dataclass(frozen=True)
class VersionRow:
    document_id: str
    tenant_id: str
    collection_id: str
    file_name: str
    version: int
    job_id: str
    sha256: str
    object_key: str
    media_type: str
    size_bytes: int
    created_at: datetime
    published_at: datetime | None
    reason: str = "upload"
    label: str = ""
    uploaded_by: str = "anonymous"
    uploaded_as: str = ""
    status: str = "processing"
    chunk_count: int | None = None
    page_count: int | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    finished_at: datetime | None = None
    source_url: str | None = None
    deleted_at: datetime | None = None
    priority: str = "normal"
    batch_id: str | None = None
    retry: int = 0
    paused: bool = False
    released_at: datetime | None = None
    cancel_requested: bool = False
    traceparent: str | None = None
    #: the document's tags (not the version's: tags belong to the document) and their revision
    tags: list[str] = field(default_factory=list)
    tags_revision: int = 0


@dataclass(frozen=True)
class CollectionRow:
    tenant_id: str
    collection_id: str
    embedding_model: str
    dimensions: int
    description: str
    chunking: str
    embed_columns: list[str]
    context_columns: list[str]
    created_by: str
    created_at: datetime
    updated_at: datetime
    document_count: int = 0


@dataclass(frozen=True)
class TagChange:
    """A document's tags as of ``tags_revision``, to announce."""

    tenant_id: str
    collection_id: str
    document_id: str
    file_name: str
    tags: list[str]
    tags_revision: int


@dataclass(frozen=True)
class Deletion:
    job_id: str
    tenant_id: str
    collection_id: str
    document_id: str
    version: int
    file_name: str
    actor: str
    cancelled_job_ids: list[str]
    created_at: datetime
    published_at: datetime | None


@dataclass(frozen=True)
class NewVersion:
    """What an upload (or re-embed) asks to record."""

    tenant_id: str
    collection_id: str
    file_name: str
    sha256: str
    object_key: str
    media_type: str
    size_bytes: int
    actor: str = "anonymous"
    reason: str = "upload"
    label: str = ""
    force: bool = False
    #: the document this is a version of (``replaces=`` or a re-embed); else found by name
    document_id: str | None = None
    source_url: str | None = None
    priority: str = "normal"
    batch_id: str | None = None
    #: the W3C trace context of the request, so that the job's later hops join its trace
    traceparent: str | None = None
    #: replace the document's tags (None: keep them; a new document starts without)
    tags: list[str] | None = None
    #: the upload's quota reservation (``tenant_limits.check_quota``), given back as the version is recorded
    quota_reservation: str | None = None


CHUNKING = ("structure", "tokens", "markdown")

_VERSION_SELECT = """
SELECT d.document_id, d.tenant_id, d.collection_id, d.file_name, v.version, v.job_id, v.sha256,
       v.object_key, v.media_type, v.size_bytes, v.created_at, v.published_at, v.reason, v.label,
       v.uploaded_by, v.file_name AS uploaded_as, v.status, v.chunk_count, v.page_count, v.warnings,
       v.error, v.finished_at, d.source_url, d.deleted_at, v.priority, v.batch_id, v.retry, v.paused,
       v.released_at, v.cancel_requested, v.traceparent, d.tags, d.tags_revision
FROM gateway.document_versions v JOIN gateway.documents d USING (document_id)
"""

_COLLECTION_SELECT = """
SELECT c.tenant_id, c.collection_id, c.embedding_model, c.dimensions, c.description, c.chunking,
       c.embed_columns, c.context_columns, c.created_by, c.created_at, c.updated_at,
       (SELECT count(*) FROM gateway.documents d WHERE d.tenant_id = c.tenant_id
          AND d.collection_id = c.collection_id AND d.deleted_at IS NULL)::int AS document_count
FROM gateway.collections c
"""

#: a deleted collection created again starts afresh
_REVIVE = (
    " deleted_at = NULL, created_at = now(), updated_at = now(), embedding_model = EXCLUDED.embedding_model,"
    " dimensions = EXCLUDED.dimensions, created_by = EXCLUDED.created_by, description = EXCLUDED.description,"
    " chunking = EXCLUDED.chunking, embed_columns = EXCLUDED.embed_columns, context_columns = EXCLUDED.context_columns"
)


def lock_key(*parts: str) -> int:
    """A 32-bit advisory lock key of ``parts`` (collisions only serialise more than needed)."""
    return zlib.crc32("\x1f".join(parts).encode())


async def audit(
    conn: AsyncConnection[Any],
    *,
    tenant_id: str,
    actor: str,
    action: str,
    outcome: str,
    collection_id: str | None = None,
    document_id: str | None = None,
    version: int | None = None,
    **detail: Any,
) -> None:
    """Record one action in the audit log (inside the caller's transaction)."""
    await conn.execute(
        "INSERT INTO gateway.audit_log"
        " (tenant_id, actor, action, collection_id, document_id, version, outcome, detail)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (tenant_id, actor, action, collection_id, document_id, version, outcome, json.dumps(detail, default=str)),
    )


class DocumentRepository:
    """Reads and writes of the gateway's tables; every query is scoped by tenant."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # ---- collections ---------------------------------------------------------------------

    async def ensure_collection(
        self, conn: AsyncConnection[Any], tenant_id: str, collection_id: str, *, model: str, dimensions: int
    ) -> CollectionRow:
        await conn.execute(
            "INSERT INTO gateway.collections AS c (tenant_id, collection_id, embedding_model, dimensions)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (tenant_id, collection_id) DO UPDATE SET"
            + _REVIVE
            + " WHERE c.deleted_at IS NOT NULL",
            (tenant_id, collection_id, model, dimensions),
        )
        async with conn.cursor(row_factory=class_row(CollectionRow)) as cur:
            await cur.execute(
                _COLLECTION_SELECT + " WHERE c.tenant_id = %s AND c.collection_id = %s", (tenant_id, collection_id)
            )
            row = await cur.fetchone()
        assert row is not None
        return row

    async def create_collections(
        self, tenant_id: str, specs: list[dict[str, Any]], *, actor: str, model: str, dimensions: int
    ) -> tuple[list[str], list[str]]:
        """Create many collections in one statement; returns (created ids, ids that existed)."""
        ids = [s["collection_id"] for s in specs]
        if len(set(ids)) != len(ids):
            raise InvalidInput("collection ids repeat within the request; each id may appear once")
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO gateway.collections AS c (tenant_id, collection_id, embedding_model, dimensions,"
                " description, chunking, embed_columns, context_columns, created_by)"
                " SELECT %s, s.id, %s, %s, s.description, s.chunking,"
                "  ARRAY(SELECT jsonb_array_elements_text(s.embed)), ARRAY(SELECT jsonb_array_elements_text(s.ctx)), %s"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::jsonb[], %s::jsonb[])"
                "  AS s(id, description, chunking, embed, ctx)"
                " ON CONFLICT (tenant_id, collection_id) DO UPDATE SET"
                + _REVIVE
                + " WHERE c.deleted_at IS NOT NULL RETURNING collection_id",
                (
                    tenant_id,
                    model,
                    dimensions,
                    actor,
                    ids,
                    [s.get("description", "") for s in specs],
                    [s.get("chunking", "structure") for s in specs],
                    [json.dumps(list(s.get("embed_columns", []))) for s in specs],
                    [json.dumps(list(s.get("context_columns", []))) for s in specs],
                ),
            )
            created = [r[0] for r in await cur.fetchall()]
            created_set = set(created)
            await conn.execute(
                "INSERT INTO gateway.audit_log (tenant_id, actor, action, collection_id, outcome)"
                " SELECT %s, %s, 'collection.create', id, CASE WHEN id = ANY(%s) THEN 'created' ELSE 'exists' END"
                " FROM unnest(%s::text[]) AS id",
                (tenant_id, actor, created, ids),
            )
        return created, [i for i in ids if i not in created_set]

    async def get_collection(self, tenant_id: str, collection_id: str) -> CollectionRow | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(CollectionRow)) as cur:
            await cur.execute(
                _COLLECTION_SELECT + " WHERE c.tenant_id = %s AND c.collection_id = %s AND c.deleted_at IS NULL",
                (tenant_id, collection_id),
            )
            return await cur.fetchone()

    async def list_collections(self, tenant_id: str, *, after: str = "", limit: int = 100) -> list[CollectionRow]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(CollectionRow)) as cur:
            await cur.execute(
                _COLLECTION_SELECT + " WHERE c.tenant_id = %s AND c.collection_id > %s AND c.deleted_at IS NULL"
                " ORDER BY c.collection_id LIMIT %s",
                (tenant_id, after, limit),
            )
            return await cur.fetchall()

    async def update_collection(
        self, tenant_id: str, collection_id: str, changes: dict[str, Any], *, actor: str
    ) -> tuple[CollectionRow, CollectionRow]:
        """Apply ``changes`` (description, chunking, embed_columns, context_columns); returns (before, after)."""
        allowed = {"description", "chunking", "embed_columns", "context_columns"}
        assert set(changes) <= allowed
        async with self.pool.connection() as conn, conn.transaction():
            async with conn.cursor(row_factory=class_row(CollectionRow)) as cur:
                await cur.execute(
                    _COLLECTION_SELECT + " WHERE c.tenant_id = %s AND c.collection_id = %s AND c.deleted_at IS NULL"
                    " FOR UPDATE OF c",
                    (tenant_id, collection_id),
                )
                before = await cur.fetchone()
            if before is None:
                raise NotFound(f"collection {collection_id!r} does not exist")
            if changes:
                sets = ", ".join(f"{column} = %s" for column in changes)
                await conn.execute(
                    f"UPDATE gateway.collections SET {sets}, updated_at = now()"
                    " WHERE tenant_id = %s AND collection_id = %s",
                    (*changes.values(), tenant_id, collection_id),
                )
            await audit(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="collection.update",
                outcome="updated",
                collection_id=collection_id,
                changes=changes,
            )
        after = await self.get_collection(tenant_id, collection_id)
        assert after is not None
        return before, after

    async def delete_collection_row(self, tenant_id: str, collection_id: str, *, actor: str) -> None:
        """Mark an empty collection deleted (rows stay, for the audit trail)."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT count(*) FROM gateway.documents WHERE tenant_id = %s AND collection_id = %s"
                " AND deleted_at IS NULL",
                (tenant_id, collection_id),
            )
            live = await cur.fetchone()
            if live is not None and live[0]:
                raise Conflict(f"collection {collection_id!r} still has {live[0]} documents", documents=live[0])
            cur = await conn.execute(
                "UPDATE gateway.collections SET deleted_at = now() WHERE tenant_id = %s AND collection_id = %s"
                " AND deleted_at IS NULL RETURNING 1",
                (tenant_id, collection_id),
            )
            if await cur.fetchone() is None:
                raise NotFound(f"collection {collection_id!r} does not exist")
            await audit(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="collection.delete",
                outcome="deleted",
                collection_id=collection_id,
            )

    # ---- versions ------------------------------------------------------------------------

    async def add_version(
        self, new: NewVersion, *, job_id: str, model: str, dimensions: int
    ) -> tuple[VersionRow, bool, CollectionRow]:
        """Record a version, or find the live version holding the same bytes.

        Returns (version, unchanged, collection). Raises ``NotFound`` for an unknown
        ``document_id`` and ``Conflict`` when a rename would take another document's name.
        """
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s)", (lock_key("upload", new.tenant_id, new.collection_id),)
            )
            if new.quota_reservation is not None:  # the version (or the unchanged answer) takes its place
                await conn.execute(
                    "DELETE FROM gateway.quota_reservations WHERE reservation_id = %s", (new.quota_reservation,)
                )
            collection = await self.ensure_collection(
                conn, new.tenant_id, new.collection_id, model=model, dimensions=dimensions
            )
            if not new.force:
                async with conn.cursor(row_factory=class_row(VersionRow)) as cur:
                    await cur.execute(
                        _VERSION_SELECT + " WHERE d.tenant_id = %s AND d.collection_id = %s AND v.sha256 = %s"
                        " AND d.deleted_at IS NULL AND v.status NOT IN ('failed', 'cancelled')"
                        " ORDER BY v.version DESC LIMIT 1",
                        (new.tenant_id, new.collection_id, new.sha256),
                    )
                    existing = await cur.fetchone()
                if existing is not None:
                    if new.tags is not None and await self._apply_tags(
                        conn, new.tenant_id, existing.document_id, new.tags, actor=new.actor
                    ):
                        async with conn.cursor(row_factory=class_row(VersionRow)) as cur:
                            await cur.execute(_VERSION_SELECT + " WHERE v.job_id = %s", (existing.job_id,))
                            existing = await cur.fetchone() or existing
                    return existing, True, collection
            document_id = await self._document_for(conn, new)
            if new.tags is not None:
                await self._apply_tags(conn, new.tenant_id, document_id, new.tags, actor=new.actor)
            cur2 = await conn.execute(
                "INSERT INTO gateway.document_versions (document_id, version, job_id, sha256, object_key, media_type,"
                " size_bytes, reason, label, uploaded_by, file_name, priority, batch_id, traceparent)"
                " SELECT %s, COALESCE(MAX(version), 0) + 1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s"
                " FROM gateway.document_versions WHERE document_id = %s RETURNING version",
                (
                    document_id,
                    job_id,
                    new.sha256,
                    new.object_key,
                    new.media_type,
                    new.size_bytes,
                    new.reason,
                    new.label,
                    new.actor,
                    new.file_name,
                    new.priority,
                    new.batch_id,
                    new.traceparent,
                    document_id,
                ),
            )
            version_row = await cur2.fetchone()
            assert version_row is not None
            version = int(version_row[0])
            if not new.label:
                await conn.execute(
                    "UPDATE gateway.document_versions SET label = %s WHERE document_id = %s AND version = %s",
                    (f"v{version}", document_id, version),
                )
            if new.batch_id:
                await conn.execute(
                    "INSERT INTO gateway.batches (tenant_id, batch_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (new.tenant_id, new.batch_id),
                )
            await audit(
                conn,
                tenant_id=new.tenant_id,
                actor=new.actor,
                action="document.reembed" if new.reason == "reembed" else "document.add",
                outcome="accepted",
                collection_id=new.collection_id,
                document_id=document_id,
                version=version,
                file_name=new.file_name,
                sha256=new.sha256,
                size_bytes=new.size_bytes,
                reason=new.reason,
                job_id=job_id,
            )
        found = await self.get_version(new.tenant_id, document_id, version)
        assert found is not None
        return found, False, collection

    async def _document_for(self, conn: AsyncConnection[Any], new: NewVersion) -> str:
        """The document a new version belongs to: the named one (renamed if needed), by name, or new."""
        cur = await conn.execute(
            "SELECT document_id FROM gateway.documents WHERE tenant_id = %s AND collection_id = %s"
            " AND file_name = %s AND deleted_at IS NULL",
            (new.tenant_id, new.collection_id, new.file_name),
        )
        by_name = await cur.fetchone()
        if new.document_id is None:
            if by_name is not None:
                return str(by_name[0])
            document_id = str(uuid.uuid4())
            await conn.execute(
                "INSERT INTO gateway.documents (document_id, tenant_id, collection_id, file_name, source_url,"
                " created_by) VALUES (%s, %s, %s, %s, %s, %s)",
                (document_id, new.tenant_id, new.collection_id, new.file_name, new.source_url, new.actor),
            )
            return document_id
        cur = await conn.execute(
            "SELECT collection_id, file_name FROM gateway.documents WHERE tenant_id = %s AND document_id = %s"
            " AND deleted_at IS NULL FOR UPDATE",
            (new.tenant_id, new.document_id),
        )
        target = await cur.fetchone()
        if target is None:
            raise NotFound(f"document {new.document_id!r} does not exist (or was deleted)")
        if target[0] != new.collection_id:
            raise InvalidInput(
                f"document {new.document_id!r} belongs to collection {target[0]!r}, not {new.collection_id!r}"
            )
        if target[1] != new.file_name:
            if by_name is not None:
                raise Conflict(
                    f"the name {new.file_name!r} is taken by another document ({by_name[0]}) of the collection;"
                    " upload under another name, or delete or rename that document first",
                    existing_document_id=str(by_name[0]),
                )
            await conn.execute(
                "UPDATE gateway.documents SET file_name = %s WHERE document_id = %s", (new.file_name, new.document_id)
            )
        return new.document_id

    async def _apply_tags(
        self, conn: AsyncConnection[Any], tenant_id: str, document_id: str, tags: list[str], *, actor: str
    ) -> bool:
        """Replace a document's tags (in the caller's transaction); whether they changed."""
        cur = await conn.execute(
            "UPDATE gateway.documents SET tags = %s, tags_revision = tags_revision + 1, tags_changed_at = now()"
            " WHERE tenant_id = %s AND document_id = %s AND tags IS DISTINCT FROM %s::text[]"
            " RETURNING collection_id, file_name, tags_revision",
            (tags, tenant_id, document_id, tags),
        )
        row = await cur.fetchone()
        if row is None:
            return False
        await audit(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            action="document.tag",
            outcome="tagged",
            collection_id=row[0],
            document_id=document_id,
            file_name=row[1],
            tags=tags,
            tags_revision=int(row[2]),
        )
        return True

    async def set_tags(self, tenant_id: str, document_id: str, tags: list[str], *, actor: str) -> bool:
        """Replace a live document's tags; whether they changed. ``NotFound`` for an unknown or deleted one."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT 1 FROM gateway.documents WHERE tenant_id = %s AND document_id = %s AND deleted_at IS NULL"
                " FOR UPDATE",
                (tenant_id, document_id),
            )
            if await cur.fetchone() is None:
                raise NotFound(f"document {document_id!r} does not exist (or was deleted)")
            return await self._apply_tags(conn, tenant_id, document_id, tags, actor=actor)

    async def unpublished_tags(self, *, document_id: str | None = None, older_than_s: float = 0.0) -> list[TagChange]:
        """Tag changes not yet announced: one document's, or every one older than ``older_than_s``."""
        sql = (
            "SELECT tenant_id, collection_id, document_id, file_name, tags, tags_revision FROM gateway.documents"
            " WHERE tags_published_revision < tags_revision AND deleted_at IS NULL"
        )
        params: tuple[Any, ...]
        if document_id is not None:
            sql, params = sql + " AND document_id = %s", (document_id,)
        else:
            sql, params = sql + " AND tags_changed_at < now() - make_interval(secs => %s)", (older_than_s,)
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(TagChange)) as cur:
            await cur.execute(sql + " ORDER BY tags_changed_at LIMIT 1000", params)
            return await cur.fetchall()

    async def mark_tags_published(self, document_id: str, revision: int) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateway.documents SET tags_published_revision = GREATEST(tags_published_revision, %s)"
                " WHERE document_id = %s",
                (revision, document_id),
            )

    async def rename(self, tenant_id: str, document_id: str, file_name: str, *, actor: str) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT collection_id, file_name FROM gateway.documents WHERE tenant_id = %s AND document_id = %s"
                " AND deleted_at IS NULL FOR UPDATE",
                (tenant_id, document_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"document {document_id!r} does not exist (or was deleted)")
            collection_id, old_name = row
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("upload", tenant_id, collection_id),))
            cur = await conn.execute(
                "SELECT document_id FROM gateway.documents WHERE tenant_id = %s AND collection_id = %s"
                " AND file_name = %s AND deleted_at IS NULL AND document_id <> %s",
                (tenant_id, collection_id, file_name, document_id),
            )
            taken = await cur.fetchone()
            if taken is not None:
                raise Conflict(
                    f"the name {file_name!r} is taken by another document ({taken[0]}) of the collection",
                    existing_document_id=str(taken[0]),
                )
            await conn.execute(
                "UPDATE gateway.documents SET file_name = %s WHERE document_id = %s", (file_name, document_id)
            )
            await audit(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="document.rename",
                outcome="renamed",
                collection_id=collection_id,
                document_id=document_id,
                old_name=old_name,
                new_name=file_name,
            )

    async def versions_of_jobs(self, job_ids: list[str]) -> dict[str, VersionRow]:
        """The versions of the given jobs, by job id (any tenant: callers check it)."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            await cur.execute(_VERSION_SELECT + " WHERE v.job_id = ANY(%s)", (job_ids,))
            return {r.job_id: r for r in await cur.fetchall()}

    async def get_version(self, tenant_id: str, document_id: str, version: int) -> VersionRow | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            await cur.execute(
                _VERSION_SELECT + " WHERE d.tenant_id = %s AND d.document_id = %s AND v.version = %s",
                (tenant_id, document_id, version),
            )
            return await cur.fetchone()

    async def list_versions(self, tenant_id: str, collection_id: str, *, limit: int = 100) -> list[VersionRow]:
        """The newest version of each live document of a collection, newest first."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            await cur.execute(
                "SELECT DISTINCT ON (document_id) * FROM (" + _VERSION_SELECT + ""
                " WHERE d.tenant_id = %s AND d.collection_id = %s AND d.deleted_at IS NULL) AS all_versions"
                " ORDER BY document_id, version DESC",
                (tenant_id, collection_id),
            )
            rows = await cur.fetchall()
        return sorted(rows, key=lambda r: r.created_at, reverse=True)[:limit]

    async def document_versions(self, tenant_id: str, document_id: str) -> list[VersionRow]:
        """Every version of a document (deleted ones too: check ``deleted_at``), oldest first."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            await cur.execute(
                _VERSION_SELECT + " WHERE d.tenant_id = %s AND d.document_id = %s ORDER BY v.version",
                (tenant_id, document_id),
            )
            return await cur.fetchall()

    async def live_documents(self, tenant_id: str, collection_id: str) -> list[str]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT document_id FROM gateway.documents WHERE tenant_id = %s AND collection_id = %s"
                " AND deleted_at IS NULL ORDER BY created_at",
                (tenant_id, collection_id),
            )
            return [str(r[0]) for r in await cur.fetchall()]

    # ---- what the pipeline reports ---------------------------------------------------------

    async def version_parsed(self, job_id: str, *, chunk_count: int, page_count: int, warnings: list[str]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateway.document_versions SET chunk_count = %s, page_count = %s, warnings = %s"
                " WHERE job_id = %s",
                (chunk_count, page_count, warnings, job_id),
            )

    async def version_indexed(self, job_id: str, *, chunk_count: int) -> None:
        """Mark a version indexed and the versions it replaced superseded."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE gateway.document_versions SET status = 'indexed', chunk_count = %s, finished_at = now()"
                " WHERE job_id = %s AND status = 'processing' RETURNING document_id, version",
                (chunk_count, job_id),
            )
            row = await cur.fetchone()
            if row is not None:
                await conn.execute(
                    "UPDATE gateway.document_versions SET status = 'superseded'"
                    " WHERE document_id = %s AND version < %s AND status = 'indexed'",
                    row,
                )

    async def version_failed(self, job_id: str, *, reason: str, retry: int = 0, cancelled: bool = False) -> None:
        """Mark a version failed (or cancelled), unless the failure is of an older run than its current one."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateway.document_versions SET status = %s, error = %s, finished_at = now()"
                " WHERE job_id = %s AND status = 'processing' AND retry <= %s",
                ("cancelled" if cancelled else "failed", reason, job_id, retry),
            )

    # ---- delete ------------------------------------------------------------------------------

    async def delete_document(
        self, tenant_id: str, document_id: str, *, actor: str, cancel: bool, job_id: str
    ) -> tuple[Deletion, list[str]]:
        """Mark a document deleted; returns the deletion (to announce) and object keys now unused.

        Refused with ``Conflict`` while a version is processing, unless ``cancel``.
        """
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT collection_id, file_name FROM gateway.documents WHERE tenant_id = %s AND document_id = %s"
                " AND deleted_at IS NULL FOR UPDATE",
                (tenant_id, document_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"document {document_id!r} does not exist (or was already deleted)")
            collection_id, file_name = row
            cur = await conn.execute(
                "SELECT job_id FROM gateway.document_versions WHERE document_id = %s AND status = 'processing'"
                " ORDER BY version",
                (document_id,),
            )
            running = [str(r[0]) for r in await cur.fetchall()]
            if running and not cancel:
                raise Conflict(
                    f"document {document_id!r} has a job running ({', '.join(running)});"
                    " wait for it to finish, or delete with cancel=true to cancel it",
                    running_job_ids=running,
                )
            await conn.execute(
                "UPDATE gateway.documents SET deleted_at = now(), deleted_by = %s WHERE document_id = %s",
                (actor, document_id),
            )
            await conn.execute(
                "UPDATE gateway.document_versions SET status = CASE WHEN status = 'processing' THEN 'cancelled'"
                " ELSE 'deleted' END, finished_at = COALESCE(finished_at, now()),"
                " error = CASE WHEN status = 'processing' THEN 'cancelled: the document was deleted' ELSE error END"
                " WHERE document_id = %s",
                (document_id,),
            )
            cur = await conn.execute(
                "SELECT MAX(version) FROM gateway.document_versions WHERE document_id = %s", (document_id,)
            )
            max_row = await cur.fetchone()
            version = int(max_row[0]) if max_row and max_row[0] is not None else 0
            await conn.execute(
                "INSERT INTO gateway.deletions (job_id, tenant_id, collection_id, document_id, version, file_name,"
                " actor, cancelled_job_ids) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (job_id, tenant_id, collection_id, document_id, version, file_name, actor, running),
            )
            # objects no live version (of any document of the tenant) still points at
            cur = await conn.execute(
                "SELECT DISTINCT v.object_key FROM gateway.document_versions v WHERE v.document_id = %s"
                " AND NOT EXISTS (SELECT 1 FROM gateway.document_versions o JOIN gateway.documents od"
                "   USING (document_id) WHERE o.object_key = v.object_key AND od.deleted_at IS NULL)",
                (document_id,),
            )
            unused = [str(r[0]) for r in await cur.fetchall()]
            await audit(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="document.delete",
                outcome="deleted",
                collection_id=collection_id,
                document_id=document_id,
                version=version,
                file_name=file_name,
                cancelled_job_ids=running,
                job_id=job_id,
            )
        deletion = await self.get_deletion(job_id)
        assert deletion is not None
        return deletion, unused

    async def get_deletion(self, job_id: str) -> Deletion | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(Deletion)) as cur:
            await cur.execute("SELECT * FROM gateway.deletions WHERE job_id = %s", (job_id,))
            return await cur.fetchone()

    async def unpublished_deletions(self, older_than_s: float) -> list[Deletion]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(Deletion)) as cur:
            await cur.execute(
                "SELECT * FROM gateway.deletions WHERE published_at IS NULL"
                " AND created_at < now() - make_interval(secs => %s) ORDER BY created_at LIMIT 100",
                (older_than_s,),
            )
            return await cur.fetchall()

    async def mark_deletion_published(self, job_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE gateway.deletions SET published_at = now() WHERE job_id = %s", (job_id,))

    # ---- audit ---------------------------------------------------------------------------------

    async def record(self, **entry: Any) -> None:
        """Record an action outside a change (a refusal, say)."""
        async with self.pool.connection() as conn:
            await audit(conn, **entry)

    async def audit_entries(
        self,
        tenant_id: str,
        *,
        document_id: str | None = None,
        collection_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Audit rows, newest first; ``before`` is the cursor (an ``audit_id``)."""
        clauses = ["tenant_id = %s"]
        params: list[Any] = [tenant_id]
        for column, value in (
            ("document_id", document_id),
            ("collection_id", collection_id),
            ("actor", actor),
            ("action", action),
        ):
            if value:
                clauses.append(f"{column} = %s")
                params.append(value)
        bounds: tuple[tuple[str, object], ...] = (("at >= %s", since), ("at < %s", until), ("audit_id < %s", before))
        for clause, bound in bounds:
            if bound is not None:
                clauses.append(clause)
                params.append(bound)
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT * FROM gateway.audit_log WHERE {' AND '.join(clauses)} ORDER BY audit_id DESC LIMIT %s",
                [*params, limit],
            )
            return await cur.fetchall()

    # ---- outbox ----------------------------------------------------------------------------------

    async def mark_published(self, job_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE gateway.document_versions SET published_at = now() WHERE job_id = %s", (job_id,))

    async def unpublished(self, older_than_s: float) -> list[VersionRow]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            await cur.execute(
                _VERSION_SELECT + " WHERE v.published_at IS NULL AND v.status = 'processing'"
                " AND v.created_at < now() - make_interval(secs => %s) ORDER BY v.created_at LIMIT 100",
                (older_than_s,),
            )
            return await cur.fetchall()
