"""What the client sends and how it is configured, checked against a recording server: a real
WSGI server on a loopback socket serving the generated StateService application."""

from __future__ import annotations

import threading
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from oci_tfstate import AsyncClient, BearerToken, Client, lock_holder, token_from_env, token_from_file
from oci_tfstate.gen.tfstate.v1.error_details_pb import LockHeldDetail
from oci_tfstate.gen.tfstate.v1.lock_pb import LockInfo
from oci_tfstate.gen.tfstate.v1.state_service_connect import StateServiceSync, StateServiceWSGIApplication
from oci_tfstate.gen.tfstate.v1.state_service_pb import (
    GetStateRequest,
    GetStateResponse,
    LockEventKind,
    LockRequest,
    LockResponse,
    WatchLockRequest,
    WatchLockResponse,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from connectrpc.request import RequestContext


class RecordingStateService(StateServiceSync):
    """Records the Authorization header of every call; Lock always fails with a LockHeldDetail.
    The other methods keep the generated default: UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self._mu = threading.Lock()

    def _record(self, ctx: RequestContext[Any, Any]) -> None:
        with self._mu:
            self.calls.append((ctx.method.name, ctx.request_headers.get("authorization")))

    def get_state(self, request: GetStateRequest, ctx: RequestContext[Any, Any]) -> GetStateResponse:
        self._record(ctx)
        return GetStateResponse(state=b"{}")

    def watch_lock(
        self, request: WatchLockRequest, ctx: RequestContext[Any, Any]
    ) -> Iterator[WatchLockResponse]:
        self._record(ctx)
        yield WatchLockResponse(workspace=request.workspace, kind=LockEventKind.SNAPSHOT)

    def lock(self, request: LockRequest, ctx: RequestContext[Any, Any]) -> LockResponse:
        self._record(ctx)
        detail = LockHeldDetail(holder=LockInfo(id="holder-id", who="alice@ci"), generation=7)
        raise ConnectError(Code.FAILED_PRECONDITION, "the workspace is locked", details=[detail])


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def recording_server() -> Iterator[tuple[str, RecordingStateService]]:
    service = RecordingStateService()
    app = StateServiceWSGIApplication(service)
    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="recording-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", service
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# The WSGI server speaks HTTP/1.1 only, so gRPC proper (HTTP/2) is covered against the service.
PROTOCOLS = ["connect", "grpc-web"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_client_sends_bearer_token_on_every_call(
    recording_server: tuple[str, RecordingStateService], protocol: str
) -> None:
    url, service = recording_server
    with Client(url, token="s3cret", protocol=protocol, timeout_ms=10_000) as client:  # type: ignore[arg-type]
        assert client.state.get_state(GetStateRequest(workspace="default")).state == b"{}"
        messages = list(client.state.watch_lock(WatchLockRequest(workspace="default")))
        assert [m.kind for m in messages] == [LockEventKind.SNAPSHOT]
        with pytest.raises(ConnectError) as refused:
            client.state.lock(LockRequest(workspace="default"))
    detail = lock_holder(refused.value)
    assert detail is not None
    assert detail.holder is not None
    assert (detail.holder.who, detail.generation) == ("alice@ci", 7)
    assert service.calls == [
        ("GetState", "Bearer s3cret"),
        ("WatchLock", "Bearer s3cret"),
        ("Lock", "Bearer s3cret"),
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_async_client_sends_bearer_token_on_every_call(
    recording_server: tuple[str, RecordingStateService], protocol: str
) -> None:
    url, service = recording_server
    async with AsyncClient(url, token="s3cret", protocol=protocol, timeout_ms=10_000) as client:  # type: ignore[arg-type]
        assert (await client.state.get_state(GetStateRequest(workspace="default"))).state == b"{}"
        messages = [m async for m in client.state.watch_lock(WatchLockRequest(workspace="default"))]
        assert [m.kind for m in messages] == [LockEventKind.SNAPSHOT]
        with pytest.raises(ConnectError) as refused:
            await client.state.lock(LockRequest(workspace="default"))
    assert lock_holder(refused.value) is not None
    assert service.calls == [
        ("GetState", "Bearer s3cret"),
        ("WatchLock", "Bearer s3cret"),
        ("Lock", "Bearer s3cret"),
    ]


def test_no_authorization_without_token(recording_server: tuple[str, RecordingStateService]) -> None:
    url, service = recording_server
    with Client(url) as client:
        client.state.get_state(GetStateRequest(workspace="default"))
    assert service.calls == [("GetState", None)]


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("127.0.0.1:8080", {}, "must start with http:// or https://"),
        ("ftp://host", {}, "must start with http:// or https://"),
        ("http://", {}, "has no host"),
        ("http://127.0.0.1:8080", {"ca_cert": b"pem"}, "need an https:// base URL"),
        ("https://host", {"client_cert": b"pem"}, "go together"),
        ("http://host", {"protocol": "carrier-pigeon"}, "unknown protocol"),
    ],
)
def test_client_rejects_bad_configuration(url: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Client(url, **options)  # type: ignore[arg-type]


def test_bearer_token_is_never_shown() -> None:
    assert "s3cret" not in repr(BearerToken("s3cret"))
    assert "s3cret" not in repr(BearerToken(lambda: "s3cret"))
    with pytest.raises(ValueError, match="empty"):
        BearerToken("")
    with pytest.raises(ValueError, match="not allowed in a header") as bad:
        BearerToken("s3cret\r\nX-Injected: 1")
    assert "s3cret" not in str(bad.value)
    with pytest.raises(TypeError, match="str or a callable"):
        BearerToken(42)  # type: ignore[arg-type]


def counting_source() -> Callable[[], str]:
    calls = iter(range(1, 1000))
    return lambda: f"token-{next(calls)}"


EXPECTED_PER_CALL = [
    ("GetState", "Bearer token-1"),
    ("WatchLock", "Bearer token-2"),
    ("Lock", "Bearer token-3"),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_client_asks_the_token_source_for_every_call(
    recording_server: tuple[str, RecordingStateService], protocol: str
) -> None:
    url, service = recording_server
    with Client(url, token=counting_source(), protocol=protocol, timeout_ms=10_000) as client:  # type: ignore[arg-type]
        client.state.get_state(GetStateRequest(workspace="default"))
        assert len(list(client.state.watch_lock(WatchLockRequest(workspace="default")))) == 1
        with pytest.raises(ConnectError):
            client.state.lock(LockRequest(workspace="default"))
    assert service.calls == EXPECTED_PER_CALL


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_async_client_asks_the_token_source_for_every_call(
    recording_server: tuple[str, RecordingStateService], protocol: str
) -> None:
    url, service = recording_server
    async with AsyncClient(url, token=counting_source(), protocol=protocol, timeout_ms=10_000) as client:  # type: ignore[arg-type]
        await client.state.get_state(GetStateRequest(workspace="default"))
        assert len([m async for m in client.state.watch_lock(WatchLockRequest(workspace="default"))]) == 1
        with pytest.raises(ConnectError):
            await client.state.lock(LockRequest(workspace="default"))
    assert service.calls == EXPECTED_PER_CALL


class ProviderDownError(RuntimeError):
    pass


def _down() -> str:
    raise ProviderDownError("the identity provider is down")


BROKEN_SOURCES: list[tuple[Callable[[], object], str]] = [
    (_down, "the token source failed: ProviderDownError: the identity provider is down"),
    (lambda: "", "empty"),
    (lambda: "s3cret\r\nX-Injected: 1", "not allowed in a header"),
    (lambda: "s3cret s3cret", "not allowed in a header"),
    (lambda: None, "returned NoneType, not str"),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("source", "message"), BROKEN_SOURCES)
def test_sync_client_sends_nothing_when_the_token_source_fails(
    recording_server: tuple[str, RecordingStateService],
    protocol: str,
    source: Callable[[], str],
    message: str,
) -> None:
    url, service = recording_server
    with Client(url, token=source, protocol=protocol, timeout_ms=10_000) as client:  # type: ignore[arg-type]
        with pytest.raises(ConnectError) as unary:
            client.state.get_state(GetStateRequest(workspace="default"))
        with pytest.raises(ConnectError) as stream:
            list(client.state.watch_lock(WatchLockRequest(workspace="default")))
    for raised in (unary, stream):
        assert raised.value.code == Code.UNAUTHENTICATED
        assert message in raised.value.message
        assert "s3cret" not in str(raised.value)
        if source is _down:
            assert isinstance(raised.value.__cause__, ProviderDownError)
    assert service.calls == []


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("source", "message"), BROKEN_SOURCES)
async def test_async_client_sends_nothing_when_the_token_source_fails(
    recording_server: tuple[str, RecordingStateService],
    protocol: str,
    source: Callable[[], str],
    message: str,
) -> None:
    url, service = recording_server
    async with AsyncClient(url, token=source, protocol=protocol, timeout_ms=10_000) as client:  # type: ignore[arg-type]
        with pytest.raises(ConnectError) as unary:
            await client.state.get_state(GetStateRequest(workspace="default"))
        with pytest.raises(ConnectError) as stream:
            [m async for m in client.state.watch_lock(WatchLockRequest(workspace="default"))]
    for raised in (unary, stream):
        assert raised.value.code == Code.UNAUTHENTICATED
        assert message in raised.value.message
        assert "s3cret" not in str(raised.value)
    assert service.calls == []


def test_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    source = token_from_env("OCI_TFSTATE_TEST_TOKEN")
    monkeypatch.setenv("OCI_TFSTATE_TEST_TOKEN", " first\n")
    assert source() == "first"
    # Read again for every call.
    monkeypatch.setenv("OCI_TFSTATE_TEST_TOKEN", "second")
    assert source() == "second"
    monkeypatch.delenv("OCI_TFSTATE_TEST_TOKEN")
    with pytest.raises(LookupError, match="OCI_TFSTATE_TEST_TOKEN is not set"):
        source()
    assert repr(token_from_env()) == "token_from_env('OCI_TFSTATE_TOKEN')"


def test_token_from_file(tmp_path: Path) -> None:
    file = tmp_path / "token"
    source = token_from_file(file)
    with pytest.raises(FileNotFoundError):
        source()
    for content, token in (("s3cret-1\n", "s3cret-1"), ("s3cret-2", "s3cret-2")):
        file.write_text(content)
        assert source() == token
    file.write_text(" \n")
    with pytest.raises(ValueError, match="is empty"):
        source()
    file.write_text("s3cret" + "x" * 70_000)
    with pytest.raises(ValueError, match="larger than") as huge:
        source()
    assert "s3cret" not in str(huge.value)
    assert "s3cret" not in repr(source)


def test_lock_holder_ignores_other_errors() -> None:
    assert lock_holder(None) is None
    assert lock_holder(ValueError("plain")) is None
    assert lock_holder(ConnectError(Code.FAILED_PRECONDITION, "no detail")) is None
