"""Load a scenario TOML file into a frozen, validated ``Scenario``.

Loading runs in three steps so that ``extends = "parent.toml"`` inheritance can
slot in as a dict merge between reading and validating:

1. ``_read_toml``: file -> dict (missing file, bad UTF-8, malformed TOML);
2. ``_resolve``: dict -> dict (today only fills ``name`` from the file name);
3. ``_validate``: dict -> ``Scenario`` (unknown keys, types, ranges, required fields).

Every failure raises ``ScenarioError``, whose message lists all problems at once,
one line each, as ``FILE: dotted.key: value VALUE: what is allowed``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from importlib.resources import files
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from simulation.params import Scenario

DEFAULT_SCENARIO_FILE = "enrich_trial.toml"

# Numeric range errors: the message then states the field's whole allowed range.
_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


class ScenarioError(Exception):
    """A scenario file that cannot be read or does not describe a valid scenario."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = problems
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{path}: {len(problems)} problems\n" + "\n".join(f"  {p}" for p in problems)
        super().__init__(message)


def default_scenario_path() -> Path:
    """The ENRICH trial scenario shipped inside the ``scenarios`` package."""
    return Path(str(files("scenarios") / DEFAULT_SCENARIO_FILE))


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read, resolve and validate a scenario file; ``None`` means the ENRICH default."""
    source = default_scenario_path() if path is None else Path(path)
    return _validate(_resolve(_read_toml(source), source), source)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ScenarioError(path, [f"{path}: no such scenario file"]) from None
    except IsADirectoryError:
        raise ScenarioError(path, [f"{path}: is a directory, not a scenario file"]) from None
    except OSError as e:
        raise ScenarioError(path, [f"{path}: cannot read: {e.strerror}"]) from None
    except UnicodeDecodeError as e:
        raise ScenarioError(
            path, [f"{path}: byte {e.start}: not UTF-8 text (TOML files must be UTF-8)"]
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(path, [f"{path}: {_toml_error(str(e))}"]) from None


def _toml_error(message: str) -> str:
    # Python 3.12's TOMLDecodeError carries its position only inside the message.
    match = re.fullmatch(r"(?s)(.*) \(at line (\d+), column (\d+)\)", message)
    if match:
        what, line, col = match.groups()
        return f"line {line}, column {col}: invalid TOML: {what}"
    return f"invalid TOML: {message}"


def _resolve(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Turn the raw file into the dict to validate; ``extends`` merging will go here."""
    resolved = dict(data)
    resolved.setdefault("name", path.stem)
    return resolved


def _validate(data: dict[str, Any], path: Path) -> Scenario:
    try:
        # Strict: TOML is typed, so "3" for a count is a mistake, not something to coerce.
        return Scenario.model_validate(data, strict=True)
    except ValidationError as e:
        problems = [f"{path}: {_describe(err)}" for err in e.errors(include_url=False)]
        raise ScenarioError(path, problems) from None


def _describe(err: ErrorDetails) -> str:
    """One validation error as ``dotted.key: value VALUE: what is allowed``."""
    loc = err["loc"]
    key = ".".join(str(part) for part in loc) or "(top level)"
    kind = err["type"]
    value = err["input"]
    info = _field_at(loc)
    meaning = f" ({info.description})" if info is not None and info.description else ""
    if kind == "extra_forbidden":
        return f"{key}: value {_show(value)}: unknown key; {_suggest(loc)}"
    if kind == "missing":
        return f"{key}: missing: required, allowed: {_allowed(info, err)}{meaning}"
    if isinstance(value, dict) and kind.startswith("value_error"):
        # Whole-table checks (e.g. shares summing past 1): the table is not worth echoing.
        return f"{key}: {err['msg'].removeprefix('Value error, ')}"
    return f"{key}: value {_show(value)}: {_problem(err)}, allowed: {_allowed(info, err)}{meaning}"


def _problem(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind in _RANGE_ERRORS:
        return "out of range"
    if kind == "literal_error":
        return "not one of the choices"
    if kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
        return f"wrong type ({_toml_type(err['input'])})"
    return _lower_first(err["msg"])


def _allowed(info: FieldInfo | None, err: ErrorDetails) -> str:
    """What a field accepts, from its type and bounds, e.g. ``an integer, 1 to 500``."""
    if info is None:
        if _model_at(err["loc"]) is not None:
            return "a table"  # e.g. a site given as a plain value
        return _lower_first(err["msg"].removeprefix("Input should be "))
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
    if _is_model(annotation) or typing.get_origin(annotation) is dict:
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


def _toml_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    for py_type, name in names.items():
        if isinstance(value, py_type):
            return name
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as written in TOML
    if isinstance(value, dict):
        return "(a table)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _suggest(loc: tuple[int | str, ...]) -> str:
    names = _valid_keys(loc[:-1])
    if not names:
        return "no keys are allowed here"
    key = str(loc[-1])
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
    if close:
        # Offer only the near-best: "engagment" should get "engagement", not also "name".
        best = difflib.SequenceMatcher(None, key, close[0]).ratio()
        close = [c for c in close if difflib.SequenceMatcher(None, key, c).ratio() >= best - 0.1]
        return "did you mean " + " or ".join(close) + "?"
    return "valid keys here: " + ", ".join(names)


# --- walking the Scenario schema along an error location -------------------------------


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class whose fields sit at ``loc`` (``()`` is ``Scenario`` itself)."""
    current: Any = Scenario
    for part in loc:
        current = _step(current, part)
        if current is None:
            return None
    return current if _is_model(current) else None


def _field_at(loc: tuple[int | str, ...]) -> FieldInfo | None:
    model = _model_at(loc[:-1])
    if model is None or not loc:
        return None
    return model.model_fields.get(str(loc[-1]))


def _valid_keys(loc: tuple[int | str, ...]) -> list[str]:
    model = _model_at(loc)
    return list(model.model_fields) if model is not None else []


def _step(current: Any, part: int | str) -> Any:
    """Descend one level: a model's field, or a value of a ``dict[str, X]``."""
    if _is_model(current):
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


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)
