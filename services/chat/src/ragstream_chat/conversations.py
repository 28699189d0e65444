"""Conversations and their messages in PostgreSQL (schema ``chat``, see ``migrations``).

Guarantees: a question and its answer are stored together or not at all, numbered in the order
they were answered (a row lock on the conversation orders concurrent questions); a conversation
is visible only to its tenant; deleting one deletes its messages.
"""

from __future__ import annotations

import builtins
import uuid
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ragstream_chat.rewrite import Turn
from ragstream_core.errors import InvalidInput, NotFound

__all__ = ["ConversationStore", "new_conversation_id", "new_message_id"]

_TITLE_CHARS = 80
_COLUMNS = "conversation_id, tenant_id, collection_id, title, created_at, updated_at"


def new_conversation_id() -> str:
    return f"conv-{uuid.uuid4().hex}"


def new_message_id() -> str:
    return f"msg-{uuid.uuid4().hex}"


def _conversation(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}


def _message(row: dict[str, Any]) -> dict[str, Any]:
    message = {
        "message_id": row["message_id"],
        "role": row["role"],
        "content": row["content"],
        "created_at": row["created_at"].isoformat(),
    }
    if row["role"] == "user":
        message["query"] = row["query"]
    else:
        message.update(mode=row["mode"], citations=row["citations"], sentences=row["sentences"])
    return message


class ConversationStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(self, tenant_id: str, collection_id: str, *, title: str = "") -> dict[str, Any]:
        """A new, empty conversation in ``collection_id``."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"INSERT INTO chat.conversations (conversation_id, tenant_id, collection_id, title) "
                f"VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}",
                (new_conversation_id(), tenant_id, collection_id, title[:_TITLE_CHARS]),
            )
            row = await cur.fetchone()
        assert row is not None
        return _conversation(row)

    async def _row(self, tenant_id: str, conversation_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM chat.conversations WHERE tenant_id = %s AND conversation_id = %s",
                (tenant_id, conversation_id),
            )
            return await cur.fetchone()

    async def require(self, tenant_id: str, collection_id: str, conversation_id: str) -> None:
        """Raise ``NotFound`` unless the conversation exists, ``InvalidInput`` if it is another collection's."""
        row = await self._row(tenant_id, conversation_id)
        if row is None:
            raise NotFound(f"no conversation {conversation_id!r}; omit conversation_id to start one")
        if row["collection_id"] != collection_id:
            raise InvalidInput(
                f"conversation {conversation_id!r} belongs to collection {row['collection_id']!r}, "
                f"not {collection_id!r}; ask it there or start a new conversation"
            )

    async def get(self, tenant_id: str, conversation_id: str) -> dict[str, Any]:
        """The conversation with its messages in order; raises ``NotFound``."""
        row = await self._row(tenant_id, conversation_id)
        if row is None:
            raise NotFound(f"no conversation {conversation_id!r}")
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM chat.messages WHERE conversation_id = %s ORDER BY seq", (conversation_id,))
            messages = [_message(m) for m in await cur.fetchall()]
        return {**_conversation(row), "messages": messages}

    async def list(self, tenant_id: str, *, collection_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The tenant's conversations (of one collection if given), most recently active first."""
        where = "tenant_id = %s" + (" AND collection_id = %s" if collection_id else "")
        params: tuple[Any, ...] = (tenant_id, collection_id) if collection_id else (tenant_id,)
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_COLUMNS}, (SELECT count(*) FROM chat.messages m "
                f" WHERE m.conversation_id = c.conversation_id) AS message_count "
                f"FROM chat.conversations c WHERE {where} ORDER BY updated_at DESC, conversation_id LIMIT %s",
                (*params, limit),
            )
            return [_conversation(r) for r in await cur.fetchall()]

    async def delete(self, tenant_id: str, conversation_id: str) -> None:
        """Delete the conversation and its messages; raises ``NotFound``."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM chat.conversations WHERE tenant_id = %s AND conversation_id = %s",
                (tenant_id, conversation_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no conversation {conversation_id!r}")

    async def history(self, tenant_id: str, conversation_id: str, *, turns: int) -> builtins.list[Turn]:
        """The last ``turns`` messages, oldest first."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT role, content, query FROM (SELECT m.* FROM chat.messages m "
                " JOIN chat.conversations c USING (conversation_id) "
                " WHERE c.tenant_id = %s AND m.conversation_id = %s ORDER BY m.seq DESC LIMIT %s) last "
                "ORDER BY seq",
                (tenant_id, conversation_id, turns),
            )
            return [Turn(role, content, query) for role, content, query in await cur.fetchall()]

    async def record(
        self,
        tenant_id: str,
        collection_id: str,
        conversation_id: str,
        *,
        question: str,
        query: str,
        answer: dict[str, Any],
    ) -> None:
        """Store a question and its answer (``message_id``, ``answer``, ``mode``, ``citations``,
        ``sentences``), creating the conversation if it is new; atomic."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO chat.conversations (conversation_id, tenant_id, collection_id, title) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (conversation_id) DO NOTHING",
                (conversation_id, tenant_id, collection_id, question[:_TITLE_CHARS]),
            )
            await conn.execute(
                "UPDATE chat.conversations SET updated_at = now(), "
                " title = CASE WHEN title = '' THEN %s ELSE title END WHERE conversation_id = %s",
                (question[:_TITLE_CHARS], conversation_id),
            )  # also the row lock that orders concurrent questions
            cur = await conn.execute(
                "SELECT coalesce(max(seq), 0) FROM chat.messages WHERE conversation_id = %s", (conversation_id,)
            )
            row = await cur.fetchone()
            seq = int(row[0]) if row else 0
            await conn.execute(
                "INSERT INTO chat.messages (message_id, conversation_id, seq, role, content, query) "
                "VALUES (%s, %s, %s, 'user', %s, %s)",
                (new_message_id(), conversation_id, seq + 1, question, query),
            )
            await conn.execute(
                "INSERT INTO chat.messages "
                "(message_id, conversation_id, seq, role, content, mode, citations, sentences) "
                "VALUES (%s, %s, %s, 'assistant', %s, %s, %s, %s)",
                (
                    answer["message_id"],
                    conversation_id,
                    seq + 2,
                    answer["answer"],
                    answer["mode"],
                    Jsonb(answer["citations"]),
                    Jsonb(answer["sentences"]),
                ),
            )
