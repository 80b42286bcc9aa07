"""An example of the Python client: read and write a workspace's state, take and release its lock,
and follow lock changes as the server pushes them (with the asynchronous client).

    python examples/tfstate_cli.py --url http://127.0.0.1:8080 get default > terraform.tfstate
    python examples/tfstate_cli.py put default terraform.tfstate
    python examples/tfstate_cli.py --protocol grpc watch default

The bearer token, when the server needs one, comes from $OCI_TFSTATE_TOKEN; --ca-file trusts a CA
for https:// URLs.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import os
import socket
import sys
from pathlib import Path

from connectrpc.errors import ConnectError

from oci_tfstate import TOKEN_ENV_VAR, AsyncClient, Client, lock_holder, token_from_env
from oci_tfstate.gen.tfstate.v1.lock_pb import LockInfo
from oci_tfstate.gen.tfstate.v1.state_service_pb import (
    GetStateRequest,
    LockRequest,
    PutStateRequest,
    UnlockRequest,
    WatchLockRequest,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfstate_cli", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="base URL of the oci-tfstate server")
    parser.add_argument("--protocol", choices=["connect", "grpc", "grpc-web"], default="connect")
    parser.add_argument("--ca-file", type=Path, help="PEM file of the CA to trust for https:// URLs")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("get", help="write the current state to stdout").add_argument("workspace")
    put_args = commands.add_parser("put", help="replace the state with FILE ('-' for stdin)")
    put_args.add_argument("workspace")
    put_args.add_argument("file")
    commands.add_parser("lock", help="take the lock and print its ID").add_argument("workspace")
    unlock_args = commands.add_parser("unlock", help="release the lock with that ID")
    unlock_args.add_argument("workspace")
    unlock_args.add_argument("lock_id")
    watch_args = commands.add_parser("watch", help="print lock changes until interrupted")
    watch_args.add_argument("workspace", nargs="?", default="", help="omit to watch every workspace")
    args = parser.parse_args(argv)

    # Read again for every call: a token rotated in the environment's source reaches the next one.
    token = token_from_env() if os.environ.get(TOKEN_ENV_VAR) else None
    ca_cert = args.ca_file.read_bytes() if args.ca_file else None
    try:
        if args.command == "watch":
            asyncio.run(
                watch(
                    AsyncClient(args.url, token=token, protocol=args.protocol, ca_cert=ca_cert),
                    args.workspace,
                )
            )
            return 0
        with Client(args.url, token=token, protocol=args.protocol, ca_cert=ca_cert) as client:
            run(client, args)
    except ConnectError as err:
        print(f"tfstate_cli: {describe(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def run(client: Client, args: argparse.Namespace) -> None:
    if args.command == "get":
        sys.stdout.buffer.write(client.state.get_state(GetStateRequest(workspace=args.workspace)).state)
    elif args.command == "put":
        state = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        md5 = hashlib.md5(state, usedforsecurity=False).digest()
        meta = client.state.put_state(
            PutStateRequest(workspace=args.workspace, state=state, md5=md5)
        ).metadata
        assert meta is not None
        print(f"stored {meta.size_bytes} bytes as {meta.digest} (version {meta.version})")
    elif args.command == "lock":
        who = f"{getpass.getuser()}@{socket.gethostname()}"
        info = LockInfo(operation="tfstate_cli", who=who)
        held = client.state.lock(LockRequest(workspace=args.workspace, lock=info)).lock
        assert held is not None
        print(held.id)
    elif args.command == "unlock":
        client.state.unlock(UnlockRequest(workspace=args.workspace, lock_id=args.lock_id))


async def watch(client: AsyncClient, workspace: str) -> None:
    async with client:
        async for event in client.state.watch_lock(WatchLockRequest(workspace=workspace)):
            line = f"{event.kind.name} {event.workspace}"
            if event.lock is not None:
                line += f" id={event.lock.id} who={event.lock.who} operation={event.lock.operation}"
            print(line, flush=True)


def describe(err: ConnectError) -> str:
    """Names the holder when the server refused a call because of the lock."""
    detail = lock_holder(err)
    if detail is None or detail.holder is None:
        return f"{err.code.value}: {err.message}"
    holder = detail.holder
    held_by = f"held by {holder.who}, lock ID {holder.id}, operation {holder.operation}"
    return f"{err.code.value}: {err.message} ({held_by})"


if __name__ == "__main__":
    sys.exit(main())
