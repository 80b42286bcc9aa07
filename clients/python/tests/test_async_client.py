"""The asynchronous client against the running service, over Connect and gRPC (see conftest.target)."""

from __future__ import annotations

import asyncio

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from oci_tfstate import AsyncClient, lock_holder
from oci_tfstate.gen.tfstate.v1.lock_pb import LockInfo
from oci_tfstate.gen.tfstate.v1.state_pb import StateMetadata
from oci_tfstate.gen.tfstate.v1.state_service_pb import (
    GetStateRequest,
    GetVersionRequest,
    ListVersionsRequest,
    LockEventKind,
    LockRequest,
    LockResponse,
    PutStateRequest,
    UnlockRequest,
    WatchLockRequest,
)
from oci_tfstate.gen.tfstate.v1.workspace_service_pb import CreateWorkspaceRequest, ListWorkspacesRequest

from .util import UUID, md5, state_bytes, workspace_name

pytestmark = pytest.mark.asyncio


async def put(client: AsyncClient, workspace: str, state: bytes, lock_id: str = "") -> StateMetadata:
    res = await client.state.put_state(
        PutStateRequest(workspace=workspace, state=state, md5=md5(state), lock_id=lock_id)
    )
    assert res.metadata is not None
    return res.metadata


async def lock(client: AsyncClient, workspace: str, who: str) -> LockResponse:
    info = LockInfo(operation="OperationTypeApply", who=who, version="1.10.0", info="python client test")
    return await client.state.lock(LockRequest(workspace=workspace, lock=info))


async def test_create_workspace(async_client: AsyncClient) -> None:
    name = workspace_name("create")
    created = (await async_client.workspaces.create_workspace(CreateWorkspaceRequest(name=name))).workspace
    assert created is not None
    assert (created.name, created.has_state) == (name, False)
    with pytest.raises(ConnectError) as exists:
        await async_client.workspaces.create_workspace(CreateWorkspaceRequest(name=name))
    assert exists.value.code == Code.ALREADY_EXISTS


async def test_put_get_round_trip_with_md5(async_client: AsyncClient) -> None:
    name = workspace_name("roundtrip")
    state = state_bytes(1, name)
    meta = await put(async_client, name, state)
    assert (meta.md5, meta.size_bytes) == (md5(state), len(state))

    got = await async_client.state.get_state(GetStateRequest(workspace=name))
    assert got.state == state
    assert got.metadata is not None
    assert (md5(got.state), got.metadata.digest) == (got.metadata.md5, meta.digest)

    with pytest.raises(ConnectError) as wrong_md5:
        await async_client.state.put_state(PutStateRequest(workspace=name, state=b"{}", md5=md5(state)))
    assert wrong_md5.value.code == Code.INVALID_ARGUMENT


async def test_lock_conflict_carries_holder(async_client: AsyncClient) -> None:
    name = workspace_name("conflict")
    held = await lock(async_client, name, "alice@ci")
    assert held.lock is not None
    assert UUID.match(held.lock.id)

    with pytest.raises(ConnectError) as conflict:
        await async_client.state.lock(LockRequest(workspace=name, lock=LockInfo(id="bob-lock", who="bob")))
    assert conflict.value.code == Code.FAILED_PRECONDITION
    detail = lock_holder(conflict.value)
    assert detail is not None
    assert detail.holder is not None
    assert (detail.holder.id, detail.holder.who, detail.holder.operation) == (
        held.lock.id,
        "alice@ci",
        "OperationTypeApply",
    )
    assert detail.generation == held.generation


async def test_fenced_put(async_client: AsyncClient) -> None:
    name = workspace_name("fenced")
    first = state_bytes(1, name)
    await put(async_client, name, first)
    held = await lock(async_client, name, "alice@ci")
    assert held.lock is not None

    with pytest.raises(ConnectError) as refused:
        await async_client.state.put_state(
            PutStateRequest(workspace=name, state=state_bytes(2, name), lock_id="not-the-holder")
        )
    assert refused.value.code == Code.FAILED_PRECONDITION
    detail = lock_holder(refused.value)
    assert detail is not None
    assert detail.holder is not None
    assert detail.holder.id == held.lock.id
    assert (await async_client.state.get_state(GetStateRequest(workspace=name))).state == first

    second = state_bytes(2, name)
    await put(async_client, name, second, held.lock.id)
    assert (await async_client.state.get_state(GetStateRequest(workspace=name))).state == second


async def test_watch_lock_streams_lock_and_unlock(async_client: AsyncClient) -> None:
    name = workspace_name("watch")
    stream = aiter(async_client.state.watch_lock(WatchLockRequest(workspace=name)))
    try:
        kinds = [(await anext(stream)).kind, (await anext(stream)).kind]
        assert kinds == [LockEventKind.SNAPSHOT, LockEventKind.SNAPSHOT_COMPLETE]

        # Lock while the stream is being read: the event is pushed, not polled for.
        pending = asyncio.ensure_future(anext(stream))
        held = await lock(async_client, name, "alice@ci")
        assert held.lock is not None
        locked = await asyncio.wait_for(pending, 10)
        assert (locked.workspace, locked.kind) == (name, LockEventKind.LOCKED)
        assert locked.lock is not None
        assert locked.lock.id == held.lock.id

        await async_client.state.unlock(UnlockRequest(workspace=name, lock_id=held.lock.id))
        unlocked = await asyncio.wait_for(anext(stream), 10)
        assert (unlocked.workspace, unlocked.kind) == (name, LockEventKind.UNLOCKED)
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


async def test_list_workspaces_and_versions(async_client: AsyncClient) -> None:
    prefix = workspace_name("list")
    names = [f"{prefix}-b", f"{prefix}-a"]
    for name in names:
        await async_client.workspaces.create_workspace(CreateWorkspaceRequest(name=name))
    metas = [await put(async_client, names[0], state_bytes(serial, prefix)) for serial in (1, 2)]

    listed: list[str] = []
    token = ""
    for _ in range(1000):
        page = await async_client.workspaces.list_workspaces(
            ListWorkspacesRequest(page_size=3, page_token=token)
        )
        listed.extend(ws.name for ws in page.workspaces)
        token = page.next_page_token
        if not token:
            break
    assert listed == sorted(listed)
    assert {"default", *names} <= set(listed)

    versions = await async_client.state.list_versions(ListVersionsRequest(workspace=names[0]))
    assert [(v.number, v.digest) for v in versions.versions] == [
        (m.version, m.digest) for m in reversed(metas)
    ]
    oldest = await async_client.state.get_version(
        GetVersionRequest(workspace=names[0], version=metas[0].version)
    )
    assert oldest.state == state_bytes(1, prefix)
