"""The example program (examples/tfstate_cli.py) run as a user would, against the TLS service, which
has identity on: the example reads its token from $OCI_TFSTATE_TOKEN, as the README says."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .util import state_bytes, workspace_name

if TYPE_CHECKING:
    from .conftest import Tokens
    from .harness import Certificates, Service

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tfstate_cli.py"


def cli_args(service: Service, certificates: Certificates, *args: str) -> list[str]:
    return [sys.executable, str(EXAMPLE), "--url", service.url, "--ca-file", str(certificates.ca_cert), *args]


def cli_env(token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OCI_TFSTATE_TOKEN"}
    return env if token is None else {**env, "OCI_TFSTATE_TOKEN": token}


def run_cli(
    service: Service, certificates: Certificates, tokens: Tokens, *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        cli_args(service, certificates, *args),
        input=stdin,
        capture_output=True,
        timeout=30,
        check=False,
        env=cli_env(tokens.token),
    )


def test_put_get_lock(
    tls_service: Service, certificates: Certificates, tokens: Tokens, tmp_path: Path
) -> None:
    name = workspace_name("example")
    state = state_bytes(1, name)
    (tmp_path / "terraform.tfstate").write_bytes(state)

    stored = run_cli(tls_service, certificates, tokens, "put", name, str(tmp_path / "terraform.tfstate"))
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.decode().startswith(f"stored {len(state)} bytes as sha256:")
    got = run_cli(tls_service, certificates, tokens, "--protocol", "grpc", "get", name)
    assert (got.returncode, got.stdout) == (0, state)

    locked = run_cli(tls_service, certificates, tokens, "lock", name)
    assert locked.returncode == 0, locked.stderr
    lock_id = locked.stdout.decode().strip()
    refused = run_cli(tls_service, certificates, tokens, "put", name, "-", stdin=b"{}")
    assert refused.returncode == 1
    assert f"lock ID {lock_id}" in refused.stderr.decode()
    assert run_cli(tls_service, certificates, tokens, "unlock", name, lock_id).returncode == 0
    assert run_cli(tls_service, certificates, tokens, "put", name, "-", stdin=b"{}").returncode == 0


def test_watch_prints_lock_changes(tls_service: Service, certificates: Certificates, tokens: Tokens) -> None:
    name = workspace_name("example-watch")
    lines: queue.Queue[str] = queue.Queue()

    def expect(prefix: str) -> str:
        line = lines.get(timeout=15)
        assert line.startswith(prefix), line
        return line

    # The context manager closes the pipes and waits for the process.
    with subprocess.Popen(
        cli_args(tls_service, certificates, "--protocol", "grpc", "watch", name),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=cli_env(tokens.token),
    ) as watcher:

        def read_lines() -> None:
            for line in watcher.stdout or ():
                lines.put(line)

        reader = threading.Thread(target=read_lines, daemon=True)
        reader.start()
        try:
            expect(f"SNAPSHOT {name}")
            expect(f"SNAPSHOT_COMPLETE {name}")
            lock_id = run_cli(tls_service, certificates, tokens, "lock", name).stdout.decode().strip()
            assert f"id={lock_id}" in expect(f"LOCKED {name}")
            assert run_cli(tls_service, certificates, tokens, "unlock", name, lock_id).returncode == 0
            expect(f"UNLOCKED {name}")
        finally:
            watcher.terminate()
            reader.join(5)


def test_without_the_token_the_service_refuses(
    tls_service: Service, certificates: Certificates, tokens: Tokens
) -> None:
    for token in (None, tokens.unknown):
        refused = subprocess.run(
            cli_args(tls_service, certificates, "get", workspace_name("example-anonymous")),
            capture_output=True,
            timeout=30,
            check=False,
            env=cli_env(token),
        )
        assert refused.returncode == 1
        assert "unauthenticated" in refused.stderr.decode().lower()
        assert tokens.unknown not in refused.stderr.decode()
