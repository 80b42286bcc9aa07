"""Fixtures: the real service on a real registry over cleartext, and on an OCI layout directory over
TLS, each reached with Connect and with gRPC, by the synchronous and the asynchronous client."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from oci_tfstate import AsyncClient, Client

from .harness import Certificates, Registry, Service

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

# Every call is bounded, so a broken server fails a test instead of hanging the run.
CALL_TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class Target:
    """One way of reaching a running service."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oci-tfstate-py-client")


@pytest.fixture(scope="session")
def certificates(workdir: Path) -> Certificates:
    return Certificates(workdir)


@pytest.fixture(scope="session")
def registry_service(workdir: Path) -> Iterator[Service]:
    registry = Registry()
    try:
        service = Service(
            f"{registry.host}/tfstate/py-client-{secrets.token_hex(4)}",
            workdir / "registry-service.log",
            "--plain-http",
            "--max-versions=10",
        )
        try:
            yield service
        finally:
            service.stop()
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def tls_service(workdir: Path, certificates: Certificates) -> Iterator[Service]:
    service = Service(
        f"oci-layout:{workdir / 'layout'}",
        workdir / "tls-service.log",
        f"--tls-cert={certificates.server_cert}",
        f"--tls-key={certificates.server_key}",
        "--max-versions=10",
    )
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(params=["registry/connect", "registry/grpc", "oci-layout+tls/connect", "oci-layout+tls/grpc"])
def target(request: pytest.FixtureRequest) -> Target:
    backend, protocol = str(request.param).split("/")
    if backend == "registry":
        service: Service = request.getfixturevalue("registry_service")
        return Target(request.param, service.url, {"protocol": protocol})
    service = request.getfixturevalue("tls_service")
    certs: Certificates = request.getfixturevalue("certificates")
    return Target(request.param, service.url, {"protocol": protocol, "ca_cert": certs.ca_cert.read_bytes()})


@pytest.fixture
def client(target: Target) -> Iterator[Client]:
    with Client(target.url, token="test-token", timeout_ms=CALL_TIMEOUT_MS, **target.options) as c:
        yield c


@pytest_asyncio.fixture
async def async_client(target: Target) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(target.url, token="test-token", timeout_ms=CALL_TIMEOUT_MS, **target.options) as c:
        yield c
