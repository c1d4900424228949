"""JSON forms of the library's result types, both ways: what the service sends and the client rebuilds.

Datetimes travel as ISO 8601 UTC, durations as seconds, tuples as lists. A type with a canonical byte
form (audit entries: ``canonical_bytes``/``from_canonical``) travels as those bytes in base64, so the
client re-checks them; one with its own JSON form (tree heads, inclusion proofs: ``to_dict``/
``from_dict``) travels in it, and the client verifies proofs again against the vault's key. So this
module needs no audit code (a restore through the service imports none). Nothing here can carry key
material: the result types have no field for it.
"""

from __future__ import annotations

import base64
import dataclasses
import types
import typing
from datetime import datetime, timedelta
from typing import Any, TypeVar

from keyvault.errors import VaultError

T = TypeVar("T")


def encode(value: Any) -> Any:
    """A JSON-safe form of a result (dataclasses field by field)."""
    if hasattr(value, "canonical_bytes"):
        return {"canonical": base64.b64encode(value.canonical_bytes()).decode("ascii")}
    if hasattr(value, "from_dict") and hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


def _decode(kind: Any, data: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        if data is None:
            return None
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _decode(options[0], data)
    if origin is tuple:
        inner = typing.get_args(kind)[0]
        return tuple(_decode(inner, item) for item in data)
    if origin is list:
        return [_decode(typing.get_args(kind)[0], item) for item in data]
    if kind is datetime:
        return datetime.fromisoformat(data)
    if kind is timedelta:
        return timedelta(seconds=float(data))
    if hasattr(kind, "from_canonical"):
        return kind.from_canonical(base64.b64decode(data["canonical"], validate=True))
    if hasattr(kind, "from_dict"):
        return kind.from_dict(data)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return decode(kind, data)
    return data


def decode(cls: type[T], data: Any) -> T:
    """Rebuild a dataclass result from ``encode``'s form; ``VaultError`` when the answer does not fit."""
    try:
        if hasattr(cls, "from_canonical") or hasattr(cls, "from_dict"):
            return typing.cast(T, _decode(cls, data))
        hints = typing.get_type_hints(cls)
        values = {f.name: _decode(hints[f.name], data[f.name]) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise VaultError(
            f"the vault service sent a malformed {cls.__name__} ({type(exc).__name__})"
        ) from None


def decode_list(cls: type[T], data: Any) -> list[T]:
    """``decode`` for each item of a JSON list."""
    if not isinstance(data, list):
        raise VaultError(f"the vault service sent no list of {cls.__name__}")
    return [decode(cls, item) for item in data]
