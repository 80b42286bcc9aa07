"""Both clients against the identity-enabled service (the TLS one, started with --tokens-file), over
every protocol they speak: the right token is served, a missing or wrong one is UNAUTHENTICATED, and a
token source is asked for every call and every stream's start."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from oci_tfstate import AsyncClient, Client, token_from_file
from oci_tfstate.gen.tfstate.v1.state_service_pb import (
    GetStateRequest,
    LockEventKind,
    PutStateRequest,
    WatchLockRequest,
)
from oci_tfstate.gen.tfstate.v1.workspace_service_pb import ListWorkspacesRequest

from .conftest import CALL_TIMEOUT_MS
from .util import md5, state_bytes, workspace_name

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from oci_tfstate import TokenSource

    from .conftest import Tokens
    from .harness import Certificates, Service

PROTOCOLS = ["connect", "grpc", "grpc-web"]


@pytest.fixture(params=PROTOCOLS)
def connect_options(
    request: pytest.FixtureRequest, tls_service: Service, certificates: Certificates
) -> dict[str, Any]:
    return {
        "base_url": tls_service.url,
        "protocol": request.param,
        "ca_cert": certificates.ca_cert.read_bytes(),
        "timeout_ms": CALL_TIMEOUT_MS,
    }


def assert_unauthenticated(raised: pytest.ExceptionInfo[ConnectError], tokens: Tokens) -> None:
    assert raised.value.code == Code.UNAUTHENTICATED, raised.value
    for secret in tokens.all():
        assert secret not in str(raised.value)
        assert secret not in repr(raised.value)


def first_watch_kind(client: Client, workspace: str) -> LockEventKind:
    """The kind of WatchLock's first message; the stream is closed after it."""
    stream = iter(client.state.watch_lock(WatchLockRequest(workspace=workspace)))
    try:
        return next(stream).kind
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


async def first_watch_kind_async(client: AsyncClient, workspace: str) -> LockEventKind:
    stream = aiter(client.state.watch_lock(WatchLockRequest(workspace=workspace)))
    try:
        return (await anext(stream)).kind
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def rotating(tokens: list[str]) -> tuple[TokenSource, Callable[[], int]]:
    """A source returning the tokens in turn (the last one ever after), and its call count."""
    calls = itertools.count(1)
    asked = [0]

    def source() -> str:
        asked[0] = next(calls)
        return tokens[min(asked[0], len(tokens)) - 1]

    return source, lambda: asked[0]


def test_the_right_token_is_served(connect_options: dict[str, Any], tokens: Tokens) -> None:
    name = workspace_name("identity")
    state = state_bytes(1, name)
    with Client(**connect_options, token=tokens.token) as client:
        client.state.put_state(PutStateRequest(workspace=name, state=state, md5=md5(state)))
        assert client.state.get_state(GetStateRequest(workspace=name)).state == state
        assert first_watch_kind(client, name) == LockEventKind.SNAPSHOT


@pytest.mark.parametrize(
    "token",
    [None, "unknown", "not-a-token", "prefix", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"],
    ids=["no token", "unknown token", "junk", "a token's prefix", "a JWT-shaped string"],
)
def test_missing_or_wrong_tokens_are_unauthenticated(
    connect_options: dict[str, Any], tokens: Tokens, token: str | None
) -> None:
    presented = {"unknown": tokens.unknown, "prefix": tokens.token[:-1]}.get(token or "", token)
    with Client(**connect_options, token=presented) as client:
        with pytest.raises(ConnectError) as listed:
            client.workspaces.list_workspaces(ListWorkspacesRequest())
        assert_unauthenticated(listed, tokens)
        with pytest.raises(ConnectError) as read:
            client.state.get_state(GetStateRequest(workspace="default"))
        assert_unauthenticated(read, tokens)
        # The stream is refused too, for one workspace and for all of them.
        for workspace in ("default", ""):
            with pytest.raises(ConnectError) as watched:
                first_watch_kind(client, workspace)
            assert_unauthenticated(watched, tokens)


def test_the_token_source_is_asked_for_every_call(connect_options: dict[str, Any], tokens: Tokens) -> None:
    source, asked = rotating([tokens.token, tokens.rotated, tokens.unknown])
    with Client(**connect_options, token=source) as client:
        client.workspaces.list_workspaces(ListWorkspacesRequest())
        assert asked() == 1
        assert first_watch_kind(client, "default") == LockEventKind.SNAPSHOT
        assert asked() == 2
        with pytest.raises(ConnectError) as refused:
            client.workspaces.list_workspaces(ListWorkspacesRequest())
        assert_unauthenticated(refused, tokens)
        assert asked() == 3


@pytest.mark.asyncio
async def test_the_async_client_asks_the_token_source_for_every_call(
    connect_options: dict[str, Any], tokens: Tokens
) -> None:
    source, asked = rotating([tokens.token, tokens.rotated, tokens.unknown])
    async with AsyncClient(**connect_options, token=source) as client:
        await client.workspaces.list_workspaces(ListWorkspacesRequest())
        assert await first_watch_kind_async(client, "default") == LockEventKind.SNAPSHOT
        assert asked() == 2
        with pytest.raises(ConnectError) as refused:
            await client.workspaces.list_workspaces(ListWorkspacesRequest())
        assert_unauthenticated(refused, tokens)
        with pytest.raises(ConnectError) as watched:
            await first_watch_kind_async(client, "default")
        assert_unauthenticated(watched, tokens)
        assert asked() == 4


@pytest.mark.asyncio
async def test_the_async_client_without_a_token_is_unauthenticated(
    connect_options: dict[str, Any], tokens: Tokens
) -> None:
    async with AsyncClient(**connect_options) as client:
        with pytest.raises(ConnectError) as refused:
            await client.state.get_state(GetStateRequest(workspace="default"))
        assert_unauthenticated(refused, tokens)


def test_a_rotated_token_file_reaches_the_next_call(
    connect_options: dict[str, Any], tokens: Tokens, tmp_path: Path
) -> None:
    file = tmp_path / "token"

    def write(token: str) -> None:
        # Replaced by a rename, as secret mounts and sidecars do.
        (tmp_path / "token.new").write_text(token + "\n")
        (tmp_path / "token.new").replace(file)

    with Client(**connect_options, token=token_from_file(file)) as client:
        write(tokens.token)
        client.workspaces.list_workspaces(ListWorkspacesRequest())
        write(tokens.rotated)
        assert first_watch_kind(client, "default") == LockEventKind.SNAPSHOT
        write(tokens.unknown)
        with pytest.raises(ConnectError) as refused:
            client.workspaces.list_workspaces(ListWorkspacesRequest())
        assert_unauthenticated(refused, tokens)
