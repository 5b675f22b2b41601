"""One-line descriptions of scenario problems: ``dotted.key: value VALUE: what is allowed``.

Pydantic's validation errors are turned into lines that name the key as the user
wrote it, the value found, what is wrong and what the field allows (its type and
range, and its meaning), with the closest valid names for a misspelt key. The
schema is walked from a root model (``Scenario`` for a whole file, ``Site`` for the
``set`` table of a ``[[sites_where]]`` entry).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from scenarios.inputs import show, suggest_among, toml_type
from simulation.params import Scenario

__all__ = [
    "allowed",
    "describe",
    "field_at",
    "is_model",
    "model_at",
    "show",
    "suggest",
    "suggest_among",
    "toml_type",
    "valid_keys",
]

# Numeric range errors: the message then states the field's whole allowed range.
_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})

Loc = tuple[int | str, ...]


def describe(
    err: ErrorDetails,
    root: type[BaseModel] = Scenario,
    prefix: str = "",
    extra_keys: Iterable[str] = (),
) -> str:
    """One validation error as ``dotted.key: value VALUE: what is allowed``.

    ``root`` is the model the error's location starts from; ``prefix`` is put before
    the dotted key (e.g. ``sites_where[1].set.``); ``extra_keys`` are further valid
    names at the top of ``root`` offered for a misspelt key (e.g. ``extends``).
    """
    loc = err["loc"]
    key = prefix + (".".join(str(part) for part in loc) or "(top level)")
    if not loc and prefix:
        key = prefix.rstrip(".")
    kind = err["type"]
    value = err["input"]
    info = field_at(loc, root)
    meaning = f" ({info.description})" if info is not None and info.description else ""
    if kind == "extra_forbidden":
        extra = tuple(extra_keys) if len(loc) == 1 else ()
        return f"{key}: value {show(value)}: unknown key; {suggest(loc, root, extra)}"
    if kind == "missing":
        return f"{key}: missing: required, allowed: {_allowed(info, err, root)}{meaning}"
    if isinstance(value, dict) and kind.startswith("value_error"):
        # Whole-table checks (e.g. shares summing past 1): the table is not worth echoing.
        return f"{key}: {err['msg'].removeprefix('Value error, ')}"
    allowed = _allowed(info, err, root)
    return f"{key}: value {show(value)}: {_problem(err)}, allowed: {allowed}{meaning}"


def _problem(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind in _RANGE_ERRORS:
        return "out of range"
    if kind == "literal_error":
        return "not one of the choices"
    if kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
        return f"wrong type ({toml_type(err['input'])})"
    return _lower_first(err["msg"])


def _allowed(info: FieldInfo | None, err: ErrorDetails, root: type[BaseModel]) -> str:
    """What a field accepts, from its type and bounds, e.g. ``an integer, 1 to 500``."""
    if info is None:
        if model_at(err["loc"], root) is not None:
            return "a table"  # e.g. a site given as a plain value
        return _lower_first(err["msg"].removeprefix("Input should be "))
    return allowed(info)


def allowed(info: FieldInfo) -> str:
    """What a field accepts, e.g. ``an integer, 1 to 500`` or ``'nhs' or 'not_for_profit'``."""
    kind = _kind(info.annotation)
    bounds = _bounds(info)
    return f"{kind}, {bounds}" if bounds else kind


def _kind(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " or ".join(repr(v) for v in typing.get_args(annotation))
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if annotation is str:
        return "a string"
    if is_model(annotation) or typing.get_origin(annotation) is dict:
        return "a table"
    return str(annotation)


def _bounds(info: FieldInfo) -> str:
    low: tuple[str, Any] | None = None
    high: tuple[str, Any] | None = None
    for bound in info.metadata:
        if isinstance(bound, Ge):
            low = (">=", bound.ge)
        elif isinstance(bound, Gt):
            low = (">", bound.gt)
        elif isinstance(bound, Le):
            high = ("<=", bound.le)
        elif isinstance(bound, Lt):
            high = ("<", bound.lt)
    if low and high and low[0] == ">=" and high[0] == "<=":
        return f"{low[1]} to {high[1]}"
    return " and ".join(f"{b[0]} {b[1]}" for b in (low, high) if b is not None)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def suggest(loc: Loc, root: type[BaseModel] = Scenario, extra: Iterable[str] = ()) -> str:
    """``did you mean X?`` for a misspelt key at ``loc``, else the valid keys there."""
    names = [*valid_keys(loc[:-1], root), *extra]
    return suggest_among(str(loc[-1]), names)


# --- walking the schema along an error location ---------------------------------------


def model_at(loc: Loc, root: type[BaseModel] = Scenario) -> type[BaseModel] | None:
    """The model class whose fields sit at ``loc`` (``()`` is ``root`` itself)."""
    current: Any = root
    for part in loc:
        current = _step(current, part)
        if current is None:
            return None
    return current if is_model(current) else None


def field_at(loc: Loc, root: type[BaseModel] = Scenario) -> FieldInfo | None:
    model = model_at(loc[:-1], root)
    if model is None or not loc:
        return None
    return model.model_fields.get(str(loc[-1]))


def valid_keys(loc: Loc, root: type[BaseModel] = Scenario) -> list[str]:
    model = model_at(loc, root)
    return list(model.model_fields) if model is not None else []


def _step(current: Any, part: int | str) -> Any:
    """Descend one level: a model's field, or a value of a ``dict[str, X]``."""
    if is_model(current):
        info = current.model_fields.get(str(part))
        return _unwrap(info.annotation) if info is not None else None
    if typing.get_origin(current) is dict:
        return _unwrap(typing.get_args(current)[1])
    return None


def _unwrap(annotation: Any) -> Any:
    # ``X | None`` -> X, so optional nested tables are still walked.
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)
