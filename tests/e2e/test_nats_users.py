"""NATS users: each service connects as its own user and may only publish, request and answer
what its role needs (``ragstream_core.nats_users``); nobody connects without a user, and no
service may destroy the event history. Tried against the running stack's real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
import nats.errors
import pytest
from nats.aio.client import Client

from ragstream_core.events import DELETE_POINTS_SUBJECT, EVENTS_STREAM, SEARCH_SUBJECT
from ragstream_core.nats_users import OPERATOR, SERVICE_USERS
from ragstream_devstack.e2e import Client as E2EClient
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id


@asynccontextmanager
async def connected(stack: Stack, user: str) -> AsyncIterator[tuple[Client, list[str]]]:
    """A connection as ``user`` and the errors the server sent it (permission violations)."""
    assert stack.nats
    errors: list[str] = []

    async def on_error(error: Exception) -> None:
        errors.append(str(error))

    nc = await nats.connect(
        stack.nats.url,
        user=user,
        password=stack.nats_passwords[user],
        error_cb=on_error,
        allow_reconnect=False,
        connect_timeout=5,
    )
    try:
        yield nc, errors
    finally:
        await nc.close()


async def ignore(_msg: object) -> None:
    return None


async def violation(errors: list[str], what: str) -> str:
    for _ in range(50):
        found = [e for e in errors if "permissions violation" in e.lower() and what.lower() in e.lower()]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no permissions violation for {what!r}; errors: {errors}")


def test_each_service_runs_as_its_own_user_not_the_operator(stack: Stack) -> None:
    for name in SERVICE_USERS:
        env = stack.service_env(name)
        assert (env["RAGSTREAM_NATS_USER"], env["RAGSTREAM_NATS_PASSWORD"]) == (name, stack.nats_passwords[name])
        assert stack.nats_passwords[OPERATOR] not in env["RAGSTREAM_NATS_URL"]
    assert len(set(stack.nats_passwords.values())) == len(stack.nats_passwords)


async def test_nobody_connects_without_a_user_or_with_a_wrong_password(stack: Stack) -> None:
    assert stack.nats
    for credentials in ({}, {"user": "parser", "password": "not-the-password"}):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(
                stack.nats.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, **credentials
            )


async def test_the_parser_cannot_forge_another_stage_s_event_or_destroy_the_history(
    stack: Stack, client: E2EClient
) -> None:
    uploaded = await client.upload("nats-users", "history.md", f"# History\n\n{new_id('kept')}".encode())
    [done] = await client.wait_done([uploaded.json()["job_id"]])
    assert done["status"] == "indexed"
    async with connected(stack, OPERATOR) as (nc, _):
        before = (await nc.jetstream().stream_info(EVENTS_STREAM)).state

    async with connected(stack, "parser") as (nc, errors):
        js = nc.jetstream()
        with pytest.raises(nats.errors.TimeoutError):  # the server drops it: no ack
            await js.publish("ragstream.events.index.updated", b"forged", timeout=1)
        await violation(errors, 'Publish to "ragstream.events.index.updated"')
        with pytest.raises(nats.errors.TimeoutError):
            await js.delete_stream(EVENTS_STREAM)
        await violation(errors, f"$JS.API.STREAM.DELETE.{EVENTS_STREAM}")
        with pytest.raises(nats.errors.TimeoutError):
            await js.purge_stream(EVENTS_STREAM)
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request(DELETE_POINTS_SUBJECT, b"", timeout=1)
        await violation(errors, DELETE_POINTS_SUBJECT)
    async with connected(stack, OPERATOR) as (nc, _):
        after = (await nc.jetstream().stream_info(EVENTS_STREAM)).state
    assert before.messages > 0
    assert (after.first_seq, after.messages >= before.messages) == (before.first_seq, True)  # the history is intact


async def test_only_the_embedder_may_answer_searches(stack: Stack) -> None:
    async with connected(stack, "chat") as (nc, errors):
        await nc.subscribe(SEARCH_SUBJECT, cb=ignore)  # posing as the index
        await nc.flush()
        await violation(errors, f'Subscription to "{SEARCH_SUBJECT}"')
    async with connected(stack, "embedder") as (nc, errors):
        await nc.subscribe("ragstream.rpc.probe", cb=ignore)
        await nc.flush()
        await asyncio.sleep(0.2)
        assert not [e for e in errors if "permissions violation" in e.lower()]
