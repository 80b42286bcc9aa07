"""Typed details of the service's errors."""

from __future__ import annotations

from typing import TypeVar

from connectrpc.errors import ConnectError
from protobuf import Message

from .gen.tfstate.v1.error_details_pb import LockHeldDetail, SizeLimitDetail

_T = TypeVar("_T", bound=Message)


def lock_holder(error: BaseException | None) -> LockHeldDetail | None:
    """The holder of the lock that made a call fail, or None.

    The service attaches a LockHeldDetail to FAILED_PRECONDITION when another client holds the
    workspace lock, or when a fenced write quoted the wrong lock ID.
    """
    return _detail(error, LockHeldDetail)


def size_limit(error: BaseException | None) -> SizeLimitDetail | None:
    """The SizeLimitDetail of a RESOURCE_EXHAUSTED error (which limit a state exceeded), or None."""
    return _detail(error, SizeLimitDetail)


def _detail(error: BaseException | None, typ: type[_T]) -> _T | None:
    if not isinstance(error, ConnectError):
        return None
    name = typ.desc().type_name
    for detail in error.details:
        if detail.type_name != name:
            continue
        value = detail.value(typ)
        if isinstance(value, typ):
            return value
    return None
