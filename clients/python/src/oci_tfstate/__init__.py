"""Python client of the oci-tfstate service: Terraform and OpenTofu state kept in an OCI registry,
served over Connect, gRPC and gRPC-Web.

    from oci_tfstate import Client, token_from_env
    from oci_tfstate.gen.tfstate.v1.state_service_pb import GetStateRequest

    with Client("http://127.0.0.1:8080", token=token_from_env()) as client:
        state = client.state.get_state(GetStateRequest(workspace="default")).state

The request and response messages are generated into ``oci_tfstate.gen.tfstate.v1``: ``*_pb``
modules hold the messages, ``*_connect`` modules the raw service clients. Errors are
``connectrpc.errors.ConnectError``; :func:`lock_holder` and :func:`size_limit` read the typed
details the service attaches to them.
"""

from __future__ import annotations

from ._auth import TOKEN_ENV_VAR, BearerToken, TokenSource, token_from_env, token_from_file
from ._client import AsyncClient, Client, ProtocolName
from ._errors import lock_holder, size_limit

__all__ = [
    "TOKEN_ENV_VAR",
    "AsyncClient",
    "BearerToken",
    "Client",
    "ProtocolName",
    "TokenSource",
    "lock_holder",
    "size_limit",
    "token_from_env",
    "token_from_file",
]
__version__ = "0.1.0"
