"""REST routes of collections: create (one or many), read, change preferences, delete, re-embed."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ragstream_core.errors import Conflict, NotFound
from ragstream_gateway.api import Actor, Ports, Tenant, reembed_many
from ragstream_gateway.handlers import check_identifier, delete_document
from ragstream_gateway.repository import CollectionRow

router = APIRouter(prefix="/v1")

#: media types whose rows are indexed with their column names (column preferences apply)
TABULAR_TYPES = frozenset(
    {
        "text/csv",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-excel.sheet.macroEnabled.12",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.apache.parquet",
        "application/vnd.ms-excel",
    }
)

Chunking = Literal["structure", "tokens", "markdown"]
ColumnList = Annotated[list[Annotated[str, Field(min_length=1, max_length=256)]], Field(max_length=500)]


class CollectionSettings(BaseModel):
    description: str = Field("", max_length=2000)
    chunking: Chunking = Field(
        "structure",
        description="structure: by document structure, headings kept (default); tokens: fixed token windows;"
        " markdown: one chunk per Markdown section.",
    )
    embed_columns: ColumnList = Field(
        default_factory=list, description="Tabular sources: the columns embedded (empty: all)."
    )
    context_columns: ColumnList = Field(
        default_factory=list, description="Tabular sources: columns kept with each row as context, not embedded."
    )


class NewCollection(CollectionSettings):
    collection_id: str


class BulkCollections(BaseModel):
    collections: list[NewCollection] = Field(min_length=1, max_length=10_000)


class CollectionPatch(BaseModel):
    description: str | None = Field(None, max_length=2000)
    chunking: Chunking | None = None
    embed_columns: ColumnList | None = None
    context_columns: ColumnList | None = None


def collection_body(row: CollectionRow) -> dict[str, Any]:
    return {
        "collection_id": row.collection_id,
        "description": row.description,
        "embedding_model": row.embedding_model,
        "dimensions": row.dimensions,
        "chunking": row.chunking,
        "embed_columns": row.embed_columns,
        "context_columns": row.context_columns,
        "document_count": row.document_count,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _spec(item: NewCollection) -> dict[str, Any]:
    check_identifier("collection", item.collection_id)
    return item.model_dump()


@router.post("/collections", status_code=201, responses={409: {"description": "A collection of that id exists."}})
async def create_collection(body: NewCollection, ports: Ports, tenant: Tenant, actor: Actor) -> dict[str, Any]:
    """Create a collection with its settings; 409 if it exists."""
    settings = ports.settings
    created, _ = await ports.documents.create_collections(
        tenant, [_spec(body)], actor=actor, model=settings.embedding_model, dimensions=settings.embedding_dimensions
    )
    if not created:
        raise Conflict(f"collection {body.collection_id!r} already exists", collection_id=body.collection_id)
    row = await ports.documents.get_collection(tenant, body.collection_id)
    assert row is not None
    return collection_body(row)


@router.post(
    "/collections/bulk",
    responses={413: {"description": "The request body is over the gateway's upload limit (every POST is bounded)."}},
)
async def create_collections(body: BulkCollections, ports: Ports, tenant: Tenant, actor: Actor) -> dict[str, Any]:
    """Create many collections in one statement (up to 10,000); existing ones are reported, not changed."""
    settings = ports.settings
    created, existing = await ports.documents.create_collections(
        tenant,
        [_spec(c) for c in body.collections],
        actor=actor,
        model=settings.embedding_model,
        dimensions=settings.embedding_dimensions,
    )
    return {"created": created, "existing": existing}


@router.get("/collections")
async def list_collections(
    ports: Ports,
    tenant: Tenant,
    after: Annotated[str, Query(description="Cursor: the next_after of the previous page.")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Collections by id, paged by ``after``."""
    rows = await ports.documents.list_collections(tenant, after=after, limit=limit)
    return {
        "collections": [collection_body(r) for r in rows],
        "next_after": rows[-1].collection_id if len(rows) == limit else None,
    }


async def _collection(ports: Ports, tenant: str, collection_id: str) -> CollectionRow:
    row = await ports.documents.get_collection(tenant, check_identifier("collection", collection_id))
    if row is None:
        raise NotFound(f"collection {collection_id!r} does not exist")
    return row


@router.get("/collections/{collection_id}")
async def get_collection(collection_id: str, ports: Ports, tenant: Tenant) -> dict[str, Any]:
    return collection_body(await _collection(ports, tenant, collection_id))


async def _documents_to_reembed(ports: Ports, tenant: str, collection_id: str, *, tabular_only: bool) -> list[str]:
    ids: list[str] = []
    for document_id in await ports.documents.live_documents(tenant, collection_id):
        versions = await ports.documents.document_versions(tenant, document_id)
        if not tabular_only or versions[-1].media_type in TABULAR_TYPES:
            ids.append(document_id)
    return ids


@router.patch("/collections/{collection_id}")
async def update_collection(
    request: Request,
    collection_id: str,
    patch: CollectionPatch,
    ports: Ports,
    tenant: Tenant,
    actor: Actor,
    reembed: Annotated[bool, Query(description="Re-embed the documents the change affects (default).")] = True,
) -> dict[str, Any]:
    """Change a collection's settings. New column preferences re-embed its tabular sources, a new
    chunking strategy every document; the previous embeddings answer until the new ones are ready."""
    changes = patch.model_dump(exclude_none=True)
    before, after = await ports.documents.update_collection(
        tenant, check_identifier("collection", collection_id), changes, actor=actor
    )
    body = collection_body(after)
    columns_changed = (before.embed_columns, before.context_columns) != (after.embed_columns, after.context_columns)
    if reembed and (columns_changed or before.chunking != after.chunking):
        ids = await _documents_to_reembed(ports, tenant, collection_id, tabular_only=before.chunking == after.chunking)
        body["reembed"] = await reembed_many(request, tenant, ids, ports, actor)
    return body


class CollectionReembed(BaseModel):
    document_ids: list[str] | None = Field(None, description="Only these documents (default: all).")
    tabular_only: bool = Field(False, description="Only tabular sources (CSV, spreadsheets, Parquet).")


@router.post("/collections/{collection_id}/reembed", status_code=202)
async def reembed_collection(
    request: Request, collection_id: str, body: CollectionReembed, ports: Ports, tenant: Tenant, actor: Actor
) -> dict[str, Any]:
    """Re-embed a whole collection (or some of its documents): one job per document."""
    await _collection(ports, tenant, collection_id)
    ids = body.document_ids or await _documents_to_reembed(ports, tenant, collection_id, tabular_only=body.tabular_only)
    return await reembed_many(request, tenant, ids, ports, actor)


@router.delete(
    "/collections/{collection_id}",
    responses={
        202: {"description": "Deleted with its documents (cascade=true): delete_job_ids lists their delete jobs."},
        409: {"description": "It has documents (without cascade=true) or running jobs (without cancel=true)."},
    },
)
async def delete_collection(
    collection_id: str,
    ports: Ports,
    tenant: Tenant,
    actor: Actor,
    cascade: Annotated[bool, Query(description="Delete its documents too (else 409 if it has any).")] = False,
    cancel: Annotated[bool, Query(description="With cascade: cancel running jobs instead of refusing.")] = False,
) -> JSONResponse:
    """Delete a collection: 409 while it has documents, unless ``cascade=true``."""
    await _collection(ports, tenant, collection_id)
    documents = await ports.documents.live_documents(tenant, collection_id)
    if documents and not cascade:
        raise Conflict(
            f"collection {collection_id!r} has {len(documents)} documents; delete with cascade=true to delete them too",
            documents=len(documents),
        )
    if not cancel:
        running = [
            v.job_id
            for d in documents
            for v in await ports.documents.document_versions(tenant, d)
            if v.status == "processing"
        ]
        if running:
            raise Conflict(
                f"collection {collection_id!r} has jobs running ({len(running)}); wait, or delete with cancel=true",
                running_job_ids=running,
            )
    jobs = [(await delete_document(tenant, d, ports, actor=actor, cancel=cancel)).job_id for d in documents]
    await ports.documents.delete_collection_row(tenant, collection_id, actor=actor)
    status = 202 if jobs else 200
    return JSONResponse({"collection_id": collection_id, "deleted": True, "delete_job_ids": jobs}, status_code=status)
