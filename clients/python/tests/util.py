"""Small helpers shared by the test modules."""

from __future__ import annotations

import hashlib
import re
import secrets

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SHA256_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def workspace_name(prefix: str) -> str:
    """A name no other test uses (the services are shared by the whole session)."""
    return f"{prefix}-{secrets.token_hex(5)}"


def state_bytes(serial: int, lineage: str) -> bytes:
    return f'{{"version":4,"serial":{serial},"lineage":"{lineage}","outputs":{{}},"resources":[]}}'.encode()


def md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()
