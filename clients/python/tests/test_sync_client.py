"""The synchronous client against the running service, over Connect and gRPC (see conftest.target)."""

from __future__ import annotations

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from oci_tfstate import Client, lock_holder, size_limit
from oci_tfstate.gen.tfstate.v1.lock_pb import LockInfo
from oci_tfstate.gen.tfstate.v1.state_pb import StateMetadata
from oci_tfstate.gen.tfstate.v1.state_service_pb import (
    GetLockRequest,
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
from oci_tfstate.gen.tfstate.v1.workspace_pb import WorkspaceView
from oci_tfstate.gen.tfstate.v1.workspace_service_pb import (
    CreateWorkspaceRequest,
    GetWorkspaceRequest,
    ListWorkspacesRequest,
)

from .util import SHA256_DIGEST, UUID, md5, state_bytes, workspace_name


def put(client: Client, workspace: str, state: bytes, lock_id: str = "") -> StateMetadata:
    res = client.state.put_state(
        PutStateRequest(workspace=workspace, state=state, md5=md5(state), lock_id=lock_id)
    )
    assert res.metadata is not None
    return res.metadata


def lock(client: Client, workspace: str, who: str) -> LockResponse:
    info = LockInfo(operation="OperationTypeApply", who=who, version="1.10.0", info="python client test")
    return client.state.lock(LockRequest(workspace=workspace, lock=info))


def test_create_workspace(client: Client) -> None:
    name = workspace_name("create")
    created = client.workspaces.create_workspace(CreateWorkspaceRequest(name=name)).workspace
    assert created is not None
    assert (created.name, created.has_state, created.lock) == (name, False, None)

    with pytest.raises(ConnectError) as exists:
        client.workspaces.create_workspace(CreateWorkspaceRequest(name=name))
    assert exists.value.code == Code.ALREADY_EXISTS

    got = client.workspaces.get_workspace(GetWorkspaceRequest(name=name, view=WorkspaceView.FULL)).workspace
    assert got is not None
    assert (got.name, got.has_state) == (name, False)

    with pytest.raises(ConnectError) as missing:
        client.state.get_state(GetStateRequest(workspace=name))
    assert missing.value.code == Code.NOT_FOUND

    with pytest.raises(ConnectError) as invalid:
        client.workspaces.create_workspace(CreateWorkspaceRequest(name=""))
    assert invalid.value.code == Code.INVALID_ARGUMENT


def test_put_get_round_trip_with_md5(client: Client) -> None:
    name = workspace_name("roundtrip")
    state = state_bytes(1, name)
    meta = put(client, name, state)
    assert meta.md5 == md5(state)
    assert meta.size_bytes == len(state)
    assert SHA256_DIGEST.match(meta.digest)

    got = client.state.get_state(GetStateRequest(workspace=name))
    assert got.state == state
    assert got.metadata is not None
    assert md5(got.state) == got.metadata.md5
    assert got.metadata.digest == meta.digest
    assert not got.not_modified

    same = client.state.get_state(GetStateRequest(workspace=name, if_none_match=meta.digest))
    assert same.not_modified
    assert same.state == b""

    with pytest.raises(ConnectError) as wrong_md5:
        client.state.put_state(PutStateRequest(workspace=name, state=state_bytes(2, name), md5=md5(state)))
    assert wrong_md5.value.code == Code.INVALID_ARGUMENT
    assert client.state.get_state(GetStateRequest(workspace=name)).state == state


def test_lock_conflict_carries_holder(client: Client) -> None:
    name = workspace_name("conflict")
    held = lock(client, name, "alice@ci")
    assert held.lock is not None
    assert UUID.match(held.lock.id)

    with pytest.raises(ConnectError) as conflict:
        client.state.lock(LockRequest(workspace=name, lock=LockInfo(id="bob-lock", who="bob@laptop")))
    assert conflict.value.code == Code.FAILED_PRECONDITION
    detail = lock_holder(conflict.value)
    assert detail is not None
    assert detail.holder is not None
    holder = detail.holder
    assert (holder.id, holder.who, holder.operation, holder.version, holder.info, holder.path) == (
        held.lock.id,
        "alice@ci",
        "OperationTypeApply",
        "1.10.0",
        "python client test",
        held.lock.path,
    )
    assert holder.created is not None
    assert detail.generation == held.generation
    assert size_limit(conflict.value) is None

    # Locking again with the holder's ID is a harmless retry.
    again = client.state.lock(LockRequest(workspace=name, lock=held.lock))
    assert again.lock is not None
    assert again.lock.id == held.lock.id
    current = client.state.get_lock(GetLockRequest(workspace=name))
    assert current.lock is not None
    assert current.lock.id == held.lock.id

    with pytest.raises(ConnectError) as wrong_unlock:
        client.state.unlock(UnlockRequest(workspace=name, lock_id="bob-lock"))
    assert wrong_unlock.value.code == Code.FAILED_PRECONDITION
    assert lock_holder(wrong_unlock.value) is not None

    released = client.state.unlock(UnlockRequest(workspace=name, lock_id=held.lock.id))
    assert released.released_lock is not None
    assert released.released_lock.id == held.lock.id
    assert lock(client, name, "bob@laptop").lock is not None


def test_fenced_put(client: Client) -> None:
    name = workspace_name("fenced")
    first = state_bytes(1, name)
    put(client, name, first)
    held = lock(client, name, "alice@ci")
    assert held.lock is not None
    lock_id = held.lock.id

    for wrong in ("", "not-the-holder"):
        with pytest.raises(ConnectError) as refused:
            client.state.put_state(PutStateRequest(workspace=name, state=state_bytes(2, name), lock_id=wrong))
        assert refused.value.code == Code.FAILED_PRECONDITION
        detail = lock_holder(refused.value)
        assert detail is not None
        assert detail.holder is not None
        assert detail.holder.id == lock_id
    assert client.state.get_state(GetStateRequest(workspace=name)).state == first

    second = state_bytes(2, name)
    put(client, name, second, lock_id)
    client.state.unlock(UnlockRequest(workspace=name, lock_id=lock_id))

    # The lock is gone, so a write quoting it works from a stale view and is refused.
    with pytest.raises(ConnectError) as stale:
        client.state.put_state(PutStateRequest(workspace=name, state=state_bytes(3, name), lock_id=lock_id))
    assert stale.value.code == Code.FAILED_PRECONDITION
    assert client.state.get_state(GetStateRequest(workspace=name)).state == second


def test_watch_lock_streams_lock_and_unlock(client: Client) -> None:
    name = workspace_name("watch")
    stream = iter(client.state.watch_lock(WatchLockRequest(workspace=name)))

    snapshot = next(stream)
    assert (snapshot.workspace, snapshot.kind, snapshot.lock) == (name, LockEventKind.SNAPSHOT, None)
    complete = next(stream)
    assert (complete.workspace, complete.kind) == (name, LockEventKind.SNAPSHOT_COMPLETE)

    # The stream stays open: what happens now is pushed to it.
    held = lock(client, name, "alice@ci")
    assert held.lock is not None
    locked = next(stream)
    assert (locked.workspace, locked.kind) == (name, LockEventKind.LOCKED)
    assert locked.lock is not None
    assert (locked.lock.id, locked.lock.who, locked.generation) == (held.lock.id, "alice@ci", held.generation)
    assert locked.observe_time is not None

    client.state.unlock(UnlockRequest(workspace=name, lock_id=held.lock.id))
    unlocked = next(stream)
    assert (unlocked.workspace, unlocked.kind) == (name, LockEventKind.UNLOCKED)
    assert unlocked.lock is None or unlocked.lock.id == held.lock.id
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def test_list_workspaces_and_versions(client: Client) -> None:
    prefix = workspace_name("list")
    names = [f"{prefix}-c", f"{prefix}-a", f"{prefix}-b"]
    for name in names:
        client.workspaces.create_workspace(CreateWorkspaceRequest(name=name))
    states = [state_bytes(serial, prefix) for serial in (1, 2, 3)]
    metas = [put(client, names[1], state) for state in states]

    # Page through everything two at a time; other tests add workspaces meanwhile, so only the
    # order and the presence of ours are checked.
    listed = []
    token = ""
    for _ in range(1000):
        page = client.workspaces.list_workspaces(ListWorkspacesRequest(page_size=2, page_token=token))
        assert len(page.workspaces) <= 2
        listed.extend(page.workspaces)
        token = page.next_page_token
        if not token:
            break
    else:
        pytest.fail("ListWorkspaces never returned an empty next_page_token")
    listed_names = [ws.name for ws in listed]
    assert listed_names == sorted(listed_names)
    by_name = {ws.name: ws for ws in listed}
    assert {"default", *names} <= by_name.keys()
    with_state = by_name[names[1]]
    assert (with_state.has_state, with_state.digest, with_state.version) == (
        True,
        metas[2].digest,
        metas[2].version,
    )
    assert not by_name[names[0]].has_state

    first = client.state.list_versions(ListVersionsRequest(workspace=names[1], page_size=2))
    assert len(first.versions) == 2
    assert first.next_page_token
    rest = client.state.list_versions(
        ListVersionsRequest(workspace=names[1], page_size=2, page_token=first.next_page_token)
    )
    assert not rest.next_page_token
    versions = [*first.versions, *rest.versions]
    # Newest first.
    assert [(v.number, v.digest) for v in versions] == [(m.version, m.digest) for m in reversed(metas)]

    oldest = client.state.get_version(GetVersionRequest(workspace=names[1], version=metas[0].version))
    assert oldest.state == states[0]
    assert oldest.metadata is not None
    assert oldest.metadata.md5 == md5(states[0])
    with pytest.raises(ConnectError) as missing:
        client.state.get_version(GetVersionRequest(workspace=names[1], version=999))
    assert missing.value.code == Code.NOT_FOUND


def test_outputs_and_summary_mask_sensitive_values(client: Client) -> None:
    from oci_tfstate.gen.tfstate.v1.state_service_pb import GetOutputsRequest, GetStateSummaryRequest
    from oci_tfstate.gen.tfstate.v1.summary_pb import StateFormat

    name = workspace_name("outputs")
    state = (
        b'{"version":4,"serial":3,"lineage":"lin","terraform_version":"1.9.0","resources":'
        b'[{"mode":"managed","type":"terraform_data","name":"x","instances":[{"attributes":{}}]}],'
        b'"outputs":{"ip":{"value":"10.0.0.1","type":"string"},'
        b'"pw":{"value":"hunter2","type":"string","sensitive":true}}}'
    )
    put(client, name, state)
    outputs = client.state.get_outputs(GetOutputsRequest(workspace=name))
    assert outputs.format == StateFormat.TERRAFORM_JSON
    assert [(o.name, o.sensitive, o.value_json) for o in outputs.outputs] == [
        ("ip", False, '"10.0.0.1"'),
        ("pw", True, ""),
    ]
    summary = client.state.get_state_summary(GetStateSummaryRequest(workspace=name)).summary
    assert summary is not None
    assert (summary.serial, summary.lineage, summary.resource_count) == (3, "lin", 1)
