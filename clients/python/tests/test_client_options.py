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

from oci_tfstate import AsyncClient, BearerToken, Client, lock_holder
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
    from collections.abc import Iterator

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
    with pytest.raises(ValueError, match="empty"):
        BearerToken("")


def test_lock_holder_ignores_other_errors() -> None:
    assert lock_holder(None) is None
    assert lock_holder(ValueError("plain")) is None
    assert lock_holder(ConnectError(Code.FAILED_PRECONDITION, "no detail")) is None
