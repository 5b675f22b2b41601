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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, Tag, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from scenarios.inputs import Problem, show, suggest_among, toml_type
from simulation.params import Scenario

__all__ = [
    "allowed",
    "describe",
    "display_loc",
    "entry_label",
    "field_at",
    "is_model",
    "model_at",
    "show",
    "suggest",
    "suggest_among",
    "toml_type",
    "valid_keys",
    "validation_problems",
]

# Numeric range errors: the message then states the field's whole allowed range.
_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})

Loc = tuple[int | str, ...]


def describe(
    err: ErrorDetails,
    root: type[BaseModel] = Scenario,
    prefix: str = "",
    extra_keys: Iterable[str] = (),
    label: Callable[[Loc], str] | None = None,
) -> str:
    """One validation error as ``dotted.key: value VALUE: what is allowed``.

    ``root`` is the model the error's location starts from; ``prefix`` is put before
    the dotted key (e.g. ``sites_where[1].set.``); ``extra_keys`` are further valid
    names at the top of ``root`` offered for a misspelt key (e.g. ``extends``);
    ``label`` writes the key of a location (default: its parts joined by ``.``), e.g.
    ``target[2] 'met_share'.observed`` for an entry of an array of tables. The
    location is shown without the tags pydantic puts in for a discriminated union.
    """
    loc = err["loc"]
    kind = err["type"]
    value = err["input"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # Report the tag as the key it is: ``distribution: value 'gamma': ...``.
        tag = str((err.get("ctx") or {}).get("discriminator", "")).strip("'\"")
        loc = (*loc, tag)
        value = value.get(tag) if isinstance(value, dict) else value
    shown = display_loc(loc, root)
    key = prefix + (label(shown) if label else ".".join(str(part) for part in shown))
    if not shown:
        key = prefix.rstrip(".") or "(top level)"
    return str(_problem_at(err, root, _Where(key, loc, value), extra_keys))


# Errors about the key itself (a missing or unknown key, a union's missing or invalid
# tag), as opposed to the value found at it.
_KEY_ERRORS = frozenset({"union_tag_not_found", "union_tag_invalid", "extra_forbidden", "missing"})


@dataclass(frozen=True)
class _Where:
    """Where a validation error is: the key as the message shows it, the location in
    the model, and the value found there."""

    key: str
    loc: Loc
    value: Any


def _problem_at(
    err: ErrorDetails, root: type[BaseModel], where: _Where, extra: Iterable[str]
) -> Problem:
    """The ``Problem`` (without its file) that one validation error describes."""
    if err["type"] in _KEY_ERRORS:
        return _key_problem(err, root, where, extra)
    return _value_problem(err, root, where)


def _key_problem(
    err: ErrorDetails, root: type[BaseModel], where: _Where, extra: Iterable[str]
) -> Problem:
    """A missing or unknown key, or a union's missing or invalid tag."""
    key, loc, value = where.key, where.loc, where.value
    kind = err["type"]
    if kind == "union_tag_not_found":
        return Problem(None, key, "missing: required", allowed=", ".join(_tags(loc[:-1], root)))
    if kind == "union_tag_invalid":
        choices = ", ".join(_tags(loc[:-1], root))
        return Problem(None, key, "not one of the choices", value, choices)
    if kind == "extra_forbidden":
        hint = suggest(loc, root, tuple(extra) if len(loc) == 1 else ())
        return Problem(None, key, f"unknown key; {hint}", value)
    return Problem(None, key, "missing: required", allowed=_allowed_at(err, root, loc))


def _value_problem(err: ErrorDetails, root: type[BaseModel], where: _Where) -> Problem:
    """A value that its field does not accept."""
    key, loc, value = where.key, where.loc, where.value
    kind = err["type"]
    if isinstance(value, dict) and kind.startswith(("value_error", "assertion_error")):
        # Whole-table checks (e.g. shares summing past 1): the table is not worth echoing.
        return Problem(None, key, err["msg"].removeprefix("Value error, "))
    if kind == "value_error":
        # A field's own check: its message says what is wrong and what is allowed.
        return Problem(None, key, _problem(err), value)
    return Problem(None, key, _problem(err), value, _allowed_at(err, root, loc))


def _allowed_at(err: ErrorDetails, root: type[BaseModel], loc: Loc) -> str:
    """What the field at ``loc`` accepts, followed by its meaning in brackets."""
    info = field_at(loc, root)
    meaning = f" ({info.description})" if info is not None and info.description else ""
    return _allowed(info, err, root) + meaning


def validation_problems(
    error: ValidationError, root: type[BaseModel], file: Path, data: Mapping[str, Any]
) -> list[str]:
    """Every error of validating ``data`` (a whole input file) as ``root``, one line
    each, starting with ``file``; entries of an array of tables are named by number
    and by their first string key (``target[2] 'met_share'``)."""
    labels = [
        entry_label(name, data, _name_key(info))
        for name, info in root.model_fields.items()
        if typing.get_origin(_unwrap(info.annotation)) is list
    ]

    def label(loc: Loc) -> str:
        for one in labels:
            text = one(loc)
            if text != ".".join(str(part) for part in loc):
                return text
        return ".".join(str(part) for part in loc)

    return [
        f"{file}: {describe(err, root, label=label)}" for err in error.errors(include_url=False)
    ]


def _name_key(info: FieldInfo) -> str:
    """The key that names an entry of a ``list[Model]`` field: its first field."""
    item = _unwrap(typing.get_args(_unwrap(info.annotation))[0])
    models = [m for _, m in _members(item)] or ([item] if is_model(item) else [])
    return next(iter(models[0].model_fields)) if models else "name"


def entry_label(entries: str, data: Mapping[str, Any], name_key: str) -> Callable[[Loc], str]:
    """A ``label`` for ``describe`` naming an entry of the array of tables ``entries``
    by number and name, as ``target[2] 'met_share'.observed`` (numbered from 1, so
    that the n-th ``[[target]]`` of the file is ``target[n]``)."""

    def label(loc: Loc) -> str:
        if len(loc) < 2 or loc[0] != entries or not isinstance(loc[1], int):
            return ".".join(str(part) for part in loc)
        items = data.get(entries)
        entry = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        name = entry.get(name_key) if isinstance(entry, dict) else None
        head = f"{entries}[{loc[1] + 1}]" + (f" {name!r}" if isinstance(name, str) else "")
        return ".".join([head, *(str(part) for part in loc[2:])])

    return label


def _problem(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind in _RANGE_ERRORS:
        return "out of range"
    if kind == "literal_error":
        return "not one of the choices"
    if kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
        return f"wrong type ({toml_type(err['input'])})"
    return _lower_first(err["msg"].removeprefix("Value error, "))


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


# What a field of these types (or generic types, by their origin) accepts.
_ORIGIN_KINDS: dict[Any, str] = {list: "an array of tables", tuple: "an array"}
_TYPE_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "true or false"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
)


def _kind(annotation: Any) -> str:
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " or ".join(repr(v) for v in typing.get_args(annotation))
    # By identity, not equality: an annotation need not be hashable.
    named = _ORIGIN_KINDS.get(origin) or next(
        (text for type_, text in _TYPE_KINDS if annotation is type_), None
    )
    if named is not None:
        return named
    if is_model(annotation) or origin is dict:
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
    """Descend one level: a model's field, a value of a ``dict[str, X]``, an item of a
    ``list[X]``, or the member of a discriminated union that the tag ``part`` names."""
    if is_model(current):
        info = current.model_fields.get(str(part))
        return _unwrap(info.annotation) if info is not None else None
    origin = typing.get_origin(current)
    if origin is dict:
        return _unwrap(typing.get_args(current)[1])
    if origin is list and isinstance(part, int):
        return _unwrap(typing.get_args(current)[0])
    return _member(current, part)


def _members(annotation: Any) -> list[tuple[str | None, type[BaseModel]]]:
    """The models of a union with their tags: a ``Tag`` annotation's, else the value of
    the model's one-value ``Literal`` field (the discriminator)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if not (
        isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    ):
        return []
    out: list[tuple[str | None, type[BaseModel]]] = []
    for member in typing.get_args(annotation):
        tag = None
        if typing.get_origin(member) is typing.Annotated:
            member, *extras = typing.get_args(member)
            tag = next((e.tag for e in extras if isinstance(e, Tag)), None)
        if is_model(member):
            out.append((tag if tag is not None else _literal_tag(member), member))
    return out


def _literal_tag(model: type[BaseModel]) -> str | None:
    for info in model.model_fields.values():
        if typing.get_origin(info.annotation) is typing.Literal:
            args = typing.get_args(info.annotation)
            if len(args) == 1:
                return str(args[0])
    return None


def _member(annotation: Any, tag: int | str) -> type[BaseModel] | None:
    for name, model in _members(annotation):
        if name == tag:
            return model
    return None


def _tags(loc: Loc, root: type[BaseModel]) -> list[str]:
    """The tags of the discriminated union at ``loc``, in declaration order."""
    current: Any = root
    for part in loc:
        current = _step(current, part)
    return [t for t, _ in _members(current) if t is not None]


def display_loc(loc: Loc, root: type[BaseModel] = Scenario) -> Loc:
    """``loc`` without the union tags pydantic inserts (``prior.0.uniform.lower`` ->
    ``prior.0.lower``): the keys as the user wrote them."""
    current: Any = root
    shown: list[int | str] = []
    for part in loc:
        if _members(current) and _member(current, part) is not None:
            current = _member(current, part)
            continue
        shown.append(part)
        current = _step(current, part) if current is not None else None
    return tuple(shown)


def _unwrap(annotation: Any) -> Any:
    # ``X | None`` -> X, so optional nested tables are still walked; ``Annotated[X, ...]``
    # -> X (a discriminated union carries its discriminator so).
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)
