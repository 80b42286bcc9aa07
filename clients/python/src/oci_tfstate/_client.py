"""Clients for both services of one oci-tfstate server, synchronous and asynchronous."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from connectrpc.protocol import ProtocolType
from pyqwest import Client as HTTPClient
from pyqwest import HTTPTransport, HTTPVersion, SyncClient, SyncHTTPTransport

from ._auth import BearerToken, TokenSource
from .gen.tfstate.v1.state_service_connect import StateServiceClient, StateServiceClientSync
from .gen.tfstate.v1.workspace_service_connect import (
    WorkspaceServiceClient,
    WorkspaceServiceClientSync,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType
    from typing import Self

    from connectrpc.interceptor import Interceptor, InterceptorSync

ProtocolName = Literal["connect", "grpc", "grpc-web"]

_PROTOCOLS: dict[str, ProtocolType] = {
    "connect": ProtocolType.CONNECT,
    "grpc": ProtocolType.GRPC,
    "grpc-web": ProtocolType.GRPC_WEB,
}


class _Settings:
    """The validated arguments shared by Client and AsyncClient."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | TokenSource | None,
        protocol: ProtocolName | ProtocolType,
        ca_cert: bytes | None,
        client_cert: bytes | None,
        client_key: bytes | None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"base URL {base_url!r} must start with http:// or https://")
        if not parts.hostname:
            raise ValueError(f"base URL {base_url!r} has no host")
        secure = parts.scheme == "https"
        if not secure and (ca_cert is not None or client_cert is not None):
            raise ValueError("TLS settings (ca_cert, client_cert) need an https:// base URL")
        if (client_cert is None) != (client_key is None):
            raise ValueError("client_cert and client_key go together")
        if isinstance(protocol, str):
            if protocol not in _PROTOCOLS:
                raise ValueError(f"unknown protocol {protocol!r}: use 'connect', 'grpc' or 'grpc-web'")
            protocol = _PROTOCOLS[protocol]
        self.base_url = base_url.rstrip("/")
        self.protocol = protocol
        self.token = token
        # gRPC needs HTTP/2: over cleartext with prior knowledge (h2c). Otherwise HTTP/1.1 over
        # cleartext, and whatever ALPN picks (HTTP/2 with this server) over TLS.
        http_version = HTTPVersion.HTTP2 if protocol == ProtocolType.GRPC and not secure else None
        self.http_version = http_version
        self.ca_cert = ca_cert
        self.client_cert = client_cert
        self.client_key = client_key


class Client:
    """Synchronous clients for both services of one oci-tfstate server.

    ``state`` reads and writes states, locks workspaces and watches locks; ``workspaces`` lists,
    creates and deletes workspaces. Close the client (or use it as a context manager) to release
    its connections.

    Args:
        base_url: The server's URL, e.g. ``http://127.0.0.1:8080`` or ``https://tfstate.example.com``.
        token: Sent as ``Authorization: Bearer <token>`` with every call: a string, or a zero-argument
            callable (a :data:`~oci_tfstate.TokenSource`, e.g. :func:`~oci_tfstate.token_from_env`
            or :func:`~oci_tfstate.token_from_file`) asked for every unary call and at the start of
            every stream, so a short-lived OIDC token fetched again reaches the next call. When it
            raises, the call fails with UNAUTHENTICATED before anything is sent.
        protocol: ``"connect"`` (default), ``"grpc"`` or ``"grpc-web"``; the server answers all three.
        ca_cert: PEM certificates to trust instead of the system's roots (https:// only).
        client_cert: PEM client certificate for mutual TLS, with ``client_key``.
        client_key: PEM private key of ``client_cert``.
        timeout_ms: Default deadline of every call; streams end with DEADLINE_EXCEEDED after it.
        interceptors: Extra connectrpc interceptors, run after the bearer token's.
    """

    state: StateServiceClientSync
    workspaces: WorkspaceServiceClientSync

    def __init__(
        self,
        base_url: str,
        *,
        token: str | TokenSource | None = None,
        protocol: ProtocolName | ProtocolType = "connect",
        ca_cert: bytes | None = None,
        client_cert: bytes | None = None,
        client_key: bytes | None = None,
        timeout_ms: int | None = None,
        interceptors: Sequence[InterceptorSync] = (),
    ) -> None:
        settings = _Settings(
            base_url,
            token=token,
            protocol=protocol,
            ca_cert=ca_cert,
            client_cert=client_cert,
            client_key=client_key,
        )
        # With a CA given, trust exactly that CA, as curl --cacert does; else the system's roots.
        self._transport = SyncHTTPTransport(
            tls_ca_cert=settings.ca_cert,
            tls_include_system_certs=settings.ca_cert is None,
            tls_cert=settings.client_cert,
            tls_key=settings.client_key,
            http_version=settings.http_version,
        )
        http_client = SyncClient(self._transport)
        chain: list[InterceptorSync] = [BearerToken(token)] if token is not None and token != "" else []
        chain.extend(interceptors)
        self.state = StateServiceClientSync(
            settings.base_url,
            protocol=settings.protocol,
            timeout_ms=timeout_ms,
            interceptors=chain,
            http_client=http_client,
        )
        self.workspaces = WorkspaceServiceClientSync(
            settings.base_url,
            protocol=settings.protocol,
            timeout_ms=timeout_ms,
            interceptors=chain,
            http_client=http_client,
        )

    def close(self) -> None:
        """Closes both service clients and the connections they share."""
        self.state.close()
        self.workspaces.close()
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """Asynchronous (asyncio) clients for both services of one oci-tfstate server.

    Takes the same arguments as :class:`Client`; ``interceptors`` are asynchronous connectrpc
    interceptors. Close it with ``await client.close()`` or use ``async with``.
    """

    state: StateServiceClient
    workspaces: WorkspaceServiceClient

    def __init__(
        self,
        base_url: str,
        *,
        token: str | TokenSource | None = None,
        protocol: ProtocolName | ProtocolType = "connect",
        ca_cert: bytes | None = None,
        client_cert: bytes | None = None,
        client_key: bytes | None = None,
        timeout_ms: int | None = None,
        interceptors: Sequence[Interceptor] = (),
    ) -> None:
        settings = _Settings(
            base_url,
            token=token,
            protocol=protocol,
            ca_cert=ca_cert,
            client_cert=client_cert,
            client_key=client_key,
        )
        # With a CA given, trust exactly that CA, as curl --cacert does; else the system's roots.
        self._transport = HTTPTransport(
            tls_ca_cert=settings.ca_cert,
            tls_include_system_certs=settings.ca_cert is None,
            tls_cert=settings.client_cert,
            tls_key=settings.client_key,
            http_version=settings.http_version,
        )
        http_client = HTTPClient(self._transport)
        chain: list[Interceptor] = [BearerToken(token)] if token is not None and token != "" else []
        chain.extend(interceptors)
        self.state = StateServiceClient(
            settings.base_url,
            protocol=settings.protocol,
            timeout_ms=timeout_ms,
            interceptors=chain,
            http_client=http_client,
        )
        self.workspaces = WorkspaceServiceClient(
            settings.base_url,
            protocol=settings.protocol,
            timeout_ms=timeout_ms,
            interceptors=chain,
            http_client=http_client,
        )

    async def close(self) -> None:
        """Closes both service clients and the connections they share."""
        await self.state.close()
        await self.workspaces.close()
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
