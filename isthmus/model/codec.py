"""Plain-data encoding of model objects (for the platform API and the control plane's watch).

Generic over the frozen dataclasses in `isthmus.model`: tuples become lists on
the way out and come back as tuples, guided by the type hints.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


def encode(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [encode(v) for v in obj]
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    return obj


def decode(cls: type[T], data: Any) -> T:
    return typing.cast(T, _decode(cls, data))


def _decode(tp: Any, data: Any) -> Any:
    origin = get_origin(tp)
    if origin is typing.Literal:
        return data
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if data is None and type(None) in options:
            return None
        for opt in options:
            if opt is type(None):
                continue
            if dataclasses.is_dataclass(opt) and isinstance(data, dict):
                kind = data.get("kind")
                hints = get_type_hints(opt)
                if kind is not None and "kind" in hints and get_args(hints["kind"]) != (kind,):
                    continue
                return _decode(opt, data)
            if opt in (int, str, bool, float) and isinstance(data, opt):
                return data
        raise ValueError(f"cannot decode {data!r} as {tp}")
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in data)
        return tuple(_decode(a, v) for a, v in zip(args, data, strict=True))
    if origin is dict:
        _, vt = get_args(tp)
        return {k: _decode(vt, v) for k, v in data.items()}
    if dataclasses.is_dataclass(tp):
        hints = get_type_hints(tp)
        kwargs = {f.name: _decode(hints[f.name], data[f.name]) for f in dataclasses.fields(tp) if f.name in data}
        return typing.cast(Any, tp)(**kwargs)
    return data
