"""Bearer token authentication for every call, synchronous or asynchronous."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectrpc.request import RequestContext


class BearerToken:
    """A connectrpc client interceptor that sends ``Authorization: Bearer <token>``.

    It works with synchronous and asynchronous clients, for unary and streaming calls alike.
    :class:`~oci_tfstate.Client` installs it for its ``token`` argument; add it yourself to
    clients built from the generated modules.
    """

    __slots__ = ("_value",)

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the bearer token is empty")
        self._value = f"Bearer {token}"

    def __repr__(self) -> str:
        # Never show the token: interceptors end up in logs and tracebacks.
        return "BearerToken(<redacted>)"

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        ctx.request_headers["authorization"] = self._value

    async def on_end(self, token: None, ctx: RequestContext[Any, Any], error: Exception | None, /) -> None:
        return

    def on_start_sync(self, ctx: RequestContext[Any, Any]) -> None:
        ctx.request_headers["authorization"] = self._value

    def on_end_sync(self, token: None, ctx: RequestContext[Any, Any], error: Exception | None, /) -> None:
        return
