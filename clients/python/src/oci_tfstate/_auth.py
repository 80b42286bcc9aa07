"""Bearer token authentication for every call, synchronous or asynchronous: a static token, or a
token source asked for every call (so a short-lived OIDC token, fetched again, or a rotated token
file reaches the next call)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from connectrpc.code import Code
from connectrpc.errors import ConnectError

if TYPE_CHECKING:
    from connectrpc.request import RequestContext

TokenSource: TypeAlias = Callable[[], str]
"""A zero-argument callable that returns the token for one call: an API token (``otfs_...``) or a
JWT. It is called for every unary call and at the start of every stream; whatever it raises fails
the call with UNAUTHENTICATED before anything is sent. Never put the token in what it raises."""

TOKEN_ENV_VAR = "OCI_TFSTATE_TOKEN"
"""The environment variable the service's token is read from by convention."""

# Far more than any API token or JWT; a larger token file is refused instead of sent.
_MAX_TOKEN_FILE_BYTES = 64 * 1024


def _check_token(token: object) -> str:
    """The token when it can travel as a bearer token; else ValueError, never quoting the token."""
    if not isinstance(token, str):
        raise TypeError(f"the token source returned {type(token).__name__}, not str")
    if not token:
        raise ValueError("the bearer token is empty")
    for i, char in enumerate(token):
        # Visible ASCII only: API tokens and JWTs are base64url and dots; a space, a control
        # character (CR/LF would split the header) or non-ASCII is a broken token.
        if not "\x21" <= char <= "\x7e":
            where = f"character {i + 1} of {len(token)}"
            raise ValueError(f"the bearer token holds a character not allowed in a header ({where})")
    return token


class BearerToken:
    """A connectrpc client interceptor that sends ``Authorization: Bearer <token>``.

    ``token`` is a string, or a :data:`TokenSource` called for every unary call and at the start of
    every stream. When the source raises, or returns an empty token or one that cannot be a header
    value, the call fails with ``ConnectError`` UNAUTHENTICATED (the source's exception is its
    ``__cause__``) and is never sent. It works with synchronous and asynchronous clients, for unary
    and streaming calls alike. :class:`~oci_tfstate.Client` installs it for its ``token`` argument;
    add it yourself to clients built from the generated modules.
    """

    __slots__ = ("_source", "_value")

    def __init__(self, token: str | TokenSource) -> None:
        if isinstance(token, str):
            self._value: str | None = f"Bearer {_check_token(token)}"
            self._source: TokenSource | None = None
        elif callable(token):
            self._value = None
            self._source = token
        else:
            raise TypeError(f"token must be a str or a callable returning one, not {type(token).__name__}")

    def __repr__(self) -> str:
        # Never show the token: interceptors end up in logs and tracebacks.
        return "BearerToken(<redacted>)"

    def _header(self) -> str:
        if self._value is not None:
            return self._value
        assert self._source is not None
        try:
            token = self._source()
        except Exception as err:
            raise ConnectError(
                Code.UNAUTHENTICATED, f"the token source failed: {type(err).__name__}: {err}"
            ) from err
        try:
            return f"Bearer {_check_token(token)}"
        except (TypeError, ValueError) as err:
            raise ConnectError(
                Code.UNAUTHENTICATED, f"the token source returned a bad token: {err}"
            ) from None

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        ctx.request_headers["authorization"] = self._header()

    async def on_end(self, token: None, ctx: RequestContext[Any, Any], error: Exception | None, /) -> None:
        return

    def on_start_sync(self, ctx: RequestContext[Any, Any]) -> None:
        ctx.request_headers["authorization"] = self._header()

    def on_end_sync(self, token: None, ctx: RequestContext[Any, Any], error: Exception | None, /) -> None:
        return


class token_from_env:
    """A :data:`TokenSource` that reads the environment variable ``name`` for every call (without
    surrounding white space). An unset or empty variable fails the call."""

    __slots__ = ("_name",)

    def __init__(self, name: str = TOKEN_ENV_VAR) -> None:
        self._name = name

    def __call__(self) -> str:
        token = os.environ.get(self._name, "").strip()
        if not token:
            raise LookupError(f"the environment variable {self._name} is not set or empty")
        return token

    def __repr__(self) -> str:
        return f"token_from_env({self._name!r})"


class token_from_file:
    """A :data:`TokenSource` that reads the file at ``path`` for every call (without surrounding
    white space): a token mounted from a secret store and rotated in place (a Kubernetes projected
    service account token, a file a sidecar refreshes) reaches the next call. A missing, empty or
    oversized file fails the call."""

    __slots__ = ("_path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)

    def __call__(self) -> str:
        with self._path.open("rb") as f:
            data = f.read(_MAX_TOKEN_FILE_BYTES + 1)
        if len(data) > _MAX_TOKEN_FILE_BYTES:
            raise ValueError(f"the token file {self._path} is larger than {_MAX_TOKEN_FILE_BYTES} bytes")
        token = data.decode("utf-8", errors="replace").strip()
        if not token:
            raise ValueError(f"the token file {self._path} is empty")
        return token

    def __repr__(self) -> str:
        return f"token_from_file({str(self._path)!r})"
