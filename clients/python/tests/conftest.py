"""Fixtures: the real service on a real registry over cleartext with no identity (anonymous callers,
no token sent), and on an OCI layout directory over TLS with identity on (--tokens-file; every call
carries a token), each reached with Connect and with gRPC, by the synchronous and the asynchronous
client."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from oci_tfstate import AsyncClient, Client

from .harness import Certificates, Registry, Service, new_secret, write_tokens_file

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


@dataclass(frozen=True)
class Tokens:
    """The secrets of the TLS service's tokens file: ``token`` and ``rotated`` are in it;
    ``unknown`` has the right shape but is not."""

    token: str
    rotated: str
    unknown: str

    def all(self) -> tuple[str, str, str]:
        return (self.token, self.rotated, self.unknown)


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens(new_secret(), new_secret(), new_secret())


@pytest.fixture(scope="session")
def tls_service(workdir: Path, certificates: Certificates, tokens: Tokens) -> Iterator[Service]:
    tokens_file = write_tokens_file(
        workdir / "tokens.json", {"py-client-tests": tokens.token, "py-client-tests-rotated": tokens.rotated}
    )
    service = Service(
        f"oci-layout:{workdir / 'layout'}",
        workdir / "tls-service.log",
        f"--tls-cert={certificates.server_cert}",
        f"--tls-key={certificates.server_key}",
        "--max-versions=10",
        f"--tokens-file={tokens_file}",
    )
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(
    params=["registry/connect", "registry/grpc", "oci-layout+tls+token/connect", "oci-layout+tls+token/grpc"]
)
def target(request: pytest.FixtureRequest) -> Target:
    backend, protocol = str(request.param).split("/")
    if backend == "registry":
        service: Service = request.getfixturevalue("registry_service")
        return Target(request.param, service.url, {"protocol": protocol})
    return tls_target(request, protocol)


def tls_target(request: pytest.FixtureRequest, protocol: str, *, token: bool = True) -> Target:
    """The identity-enabled TLS service, with its first token unless ``token`` is false."""
    service: Service = request.getfixturevalue("tls_service")
    certs: Certificates = request.getfixturevalue("certificates")
    options: dict[str, Any] = {"protocol": protocol, "ca_cert": certs.ca_cert.read_bytes()}
    if token:
        options["token"] = request.getfixturevalue("tokens").token
    return Target(f"oci-layout+tls/{protocol}", service.url, options)


@pytest.fixture
def client(target: Target) -> Iterator[Client]:
    with Client(target.url, timeout_ms=CALL_TIMEOUT_MS, **target.options) as c:
        yield c


@pytest_asyncio.fixture
async def async_client(target: Target) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(target.url, timeout_ms=CALL_TIMEOUT_MS, **target.options) as c:
        yield c
