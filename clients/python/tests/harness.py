"""Starts the real oci-tfstate service (the repository's src/cli.ts on its pinned Node) and a real
registry (Debian's docker-registry) on random loopback ports, and stops them by PID."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
_REGISTRY_LISTENING = re.compile(r"listening on (127\.0\.0\.1:\d+)")


def repo_root() -> Path:
    """The oci-tfstate repository above this file: the first directory with package.json and src/cli.ts."""
    for directory in Path(__file__).resolve().parents:
        if (directory / "package.json").is_file() and (directory / "src" / "cli.ts").is_file():
            return directory
    raise RuntimeError("no oci-tfstate repository (package.json with src/cli.ts) above the tests")


def _with_parent_death_signal(args: list[str]) -> list[str]:
    """Wraps a command so Linux kills it when the test process dies, even by SIGKILL (no cleanup
    runs then). setpriv execs the command, so the PID stays the command's."""
    setpriv = shutil.which("setpriv")
    if sys.platform != "linux" or setpriv is None:
        return args
    return [setpriv, "--pdeathsig", "SIGKILL", "--", *args]


class Process:
    """A child process whose output goes to a log file, polled for what the tests need."""

    def __init__(self, name: str, args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self._popen = subprocess.Popen(
                _with_parent_death_signal(args),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, what: str, find: re.Pattern[str] | None = None, json_msg: str | None = None) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            out = self.output()
            if find is not None and (m := find.search(out)):
                return m.group(1)
            if json_msg is not None:
                for line in out.splitlines():
                    if line.startswith("{"):
                        try:
                            record = json.loads(line)
                        except ValueError:
                            continue
                        if record.get("msg") == json_msg and record.get("url"):
                            return str(record["url"])
            if self._popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self._popen.returncode}) before {what}:\n{_tail(out)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not report {what} in {START_TIMEOUT_S} s:\n{_tail(out)}")
            time.sleep(0.01)

    def stop(self) -> int | None:
        """SIGTERM, SIGKILL after a timeout; returns the exit status (negative: killed by that signal)."""
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
                raise RuntimeError(
                    f"{self.name} did not stop within {STOP_TIMEOUT_S} s of SIGTERM; killed"
                ) from None
        return self._popen.returncode


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class Registry:
    """docker-registry (CNCF Distribution) on a random loopback port, storing into a temp dir."""

    def __init__(self) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is not installed (Debian package docker-registry)")
        self.root = Path(tempfile.mkdtemp(prefix="oci-tfstate-py-client-registry-"))
        config = {
            "version": 0.1,
            # "info" is the lowest level that still prints the "listening on" line with the port.
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": "127.0.0.1:0", "secret": "oci-tfstate-python-client-tests"},
        }
        # JSON is YAML, so the registry reads it as its config.yml.
        (self.root / "config.yml").write_text(json.dumps(config, indent=2))
        try:
            self.process = Process(
                "docker-registry",
                [binary, "serve", str(self.root / "config.yml")],
                self.root,
                self.root / "registry.log",
            )
            self.host = self.process.wait_for("its port", find=_REGISTRY_LISTENING)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def stop(self) -> None:
        try:
            self.process.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class Service:
    """The oci-tfstate server: `node --import tsx src/cli.ts --listen 127.0.0.1:0 ...` from the repo root."""

    def __init__(self, repository: str, log: Path, *args: str) -> None:
        root = repo_root()
        node = root / "node_modules" / ".bin" / "node"
        if not node.exists():
            raise RuntimeError(f"{node} is missing: run npm ci in {root}")
        # Only what the service needs: no OCI_TFSTATE_* or OTEL_* settings from the caller's shell.
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), "NO_COLOR": "1"}
        command = [str(node), "--import", "tsx", "src/cli.ts", "--listen", "127.0.0.1:0"]
        command += ["--repository", repository, *args]
        self.process = Process("oci-tfstate", command, root, log, env)
        self.url = self.process.wait_for('its "listening" log line', json_msg="listening")

    def stop(self) -> None:
        """Stops with SIGTERM, after which the service must exit with status 0."""
        code = self.process.stop()
        if code != 0:
            raise RuntimeError(f"oci-tfstate exited with {code} on SIGTERM:\n{_tail(self.process.output())}")


class Certificates:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost (openssl CLI)."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("openssl") is None:
            raise RuntimeError("openssl is not installed")
        self.ca_cert = directory / "ca.crt"
        self.server_cert = directory / "server.crt"
        self.server_key = directory / "server.key"
        ca_key = directory / "ca.key"
        csr = directory / "server.csr"
        ext = directory / "server.ext"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl(
            "req", "-x509", *ec, "-keyout", ca_key, "-out", self.ca_cert, "-days", "2",
            "-subj", "/CN=oci-tfstate python client test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        _openssl("req", *ec, "-keyout", self.server_key, "-out", csr, "-subj", "/CN=localhost")
        ext.write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
        )
        _openssl(
            "x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", self.server_cert,
        )  # fmt: skip


def _openssl(*args: str | Path) -> None:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def new_secret() -> str:
    """An API token as `oci-tfstate token create` makes it: "otfs_" and 32 random bytes in unpadded
    base64url (43 characters)."""
    return "otfs_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def write_tokens_file(path: Path, tokens: dict[str, str]) -> Path:
    """Writes the file the service reads with --tokens-file: ``{"tokens": [{"name", "sha256"}]}``
    (JSON being YAML), with the lowercase hex SHA-256 of each secret, keyed by token name."""
    entries = [
        {"name": name, "sha256": hashlib.sha256(secret.encode()).hexdigest()}
        for name, secret in tokens.items()
    ]
    path.write_text(json.dumps({"tokens": entries}, indent=2))
    return path
