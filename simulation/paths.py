"""Parameter paths and site selectors: one way to name values of a ``Scenario``.

A parameter path names one field of a scenario::

    ward.w_preparation                           GROUP.FIELD, a global parameter
    sites.F.n_peer_workers                       sites.NAME.FIELD, one site's field
    sites.*.supervisor_h_per_week                every site's
    sites[host=not_for_profit, geography=rural].honorary_contracts
                                                 every site meeting all the conditions

The part before ``.FIELD`` is a site selector, and the same selector is written
wherever a string selects sites (a calibration target's ``sites``, a sensitivity
spec's parameter paths): ``sites.NAME``, ``sites.*`` or ``sites[COND, ...]``. A
condition is ``FIELD=VALUE`` with the value written as in TOML, bare words being
strings (``host=nhs``, ``honorary_contracts=true``, ``n_peer_workers=4``); a site
meets it if its field equals the value (a field a site leaves out counts as its
default). A site name with a ``.`` or ``[`` in it is quoted: ``sites."St. Ann's"``.
A scenario file's ``[[sites_where]]`` entry writes the same conditions as TOML keys
(``host = "not_for_profit"``); ``SiteSelector.from_conditions`` makes the same
selector of them.

Old spelling, accepted for one release with a note on stderr: a bare condition
``host=nhs`` (in a target's ``sites``) for ``sites[host=nhs]``.

``with_values(scenario, {path: value})`` (also ``Scenario.with_values``) sets values
at paths and validates the result afresh, so every rule of the schema holds.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from simulation.names import closest_names
from simulation.params import PARAMETER_GROUPS, Scenario, Site

__all__ = [
    "ParameterPath",
    "PathError",
    "SiteSelector",
    "get_value",
    "get_values",
    "known_paths",
    "note_old_spelling",
    "parse_path",
    "parse_selector",
    "site_path",
    "with_values",
]

EVERY_SITE = "sites.*"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_QUOTED = r'"(?:[^"\\]|\\.)+"'
_SELECTOR = re.compile(
    rf"^sites(?:\.(?P<every>\*)|\.(?P<quoted>{_QUOTED})|\.(?P<name>[^.\[\]\"]+)"
    r"|\[(?P<conditions>[^\]]*)\])"
)
_CONDITION = re.compile(rf"\s*(?P<field>{_NAME})\s*=\s*(?P<value>{_QUOTED}|[^,\]]*?)\s*(?:,|$)")
_OLD_CONDITION = re.compile(rf"^\s*{_NAME}\s*=")
_GLOBAL = re.compile(rf"^(?P<group>{_NAME})\.(?P<field>{_NAME})$")


class PathError(ValueError):
    """A path or selector that names nothing: ``closest`` holds the valid names
    nearest the misspelt part, for the caller's message."""

    def __init__(self, message: str, closest: Iterable[str] = ()) -> None:
        self.closest = tuple(closest)
        hint = f"; did you mean {' or '.join(self.closest)}?" if self.closest else ""
        super().__init__(message + hint)


def note_old_spelling(old: str, new: str) -> None:
    """Say on stderr, in one line, that ``old`` still works but ``new`` is how to write it."""
    print(f"peersim: note: old spelling {old!r}; write {new!r}", file=sys.stderr)


# --- site selectors --------------------------------------------------------------------


@dataclass(frozen=True)
class SiteSelector:
    """Which sites: one by ``name``, else every site meeting all ``conditions``
    (``(field, value)`` pairs; none: every site)."""

    name: str | None = None
    conditions: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_conditions(cls, conditions: Mapping[str, Any]) -> SiteSelector:
        """The selector of a ``[[sites_where]]`` entry's conditions (already checked)."""
        return cls(conditions=tuple(conditions.items()))

    @property
    def text(self) -> str:
        """The selector as written: ``sites.NAME``, ``sites.*`` or ``sites[...]``."""
        if self.name is not None:
            return f"sites.{_quote(self.name)}"
        if not self.conditions:
            return EVERY_SITE
        return "sites[" + ", ".join(f"{k}={_toml(v)}" for k, v in self.conditions) + "]"

    def matches(self, site: Site | Mapping[str, Any]) -> bool:
        """Whether ``site`` (validated, or a table of its keys) meets every condition."""
        for key, wanted in self.conditions:
            value = _site_value(site, key)
            if value is PydanticUndefined:
                return False
            # 1 == true in Python, not in a scenario file.
            if value != wanted or isinstance(value, bool) != isinstance(wanted, bool):
                return False
        return True

    def select(self, sites: Mapping[str, Site | Mapping[str, Any]]) -> tuple[str, ...]:
        """The names of the selected sites, in ``sites`` order; ``PathError`` for an
        unknown name (with the closest names). May be empty for conditions."""
        if self.name is not None:
            if self.name not in sites:
                close = closest_names(self.name, sites)
                listing = "" if close else f"; the sites are {', '.join(sites)}"
                raise PathError(f"no site {self.name!r}{listing}", close)
            return (self.name,)
        return tuple(name for name, site in sites.items() if self.matches(site))


def _site_value(site: Site | Mapping[str, Any], key: str) -> Any:
    if isinstance(site, Site):
        return getattr(site, key)
    if key in site:
        return site[key]
    return Site.model_fields[key].default  # PydanticUndefined if required


def parse_selector(text: str, old_spelling: bool = False) -> SiteSelector:
    """The selector ``text`` writes (the whole text: ``sites.NAME``, ``sites.*``,
    ``sites[COND, ...]``). ``old_spelling`` also accepts a bare ``FIELD=VALUE, ...``
    (with a note on stderr). ``PathError`` if it is neither."""
    if old_spelling and _OLD_CONDITION.match(text):
        selector = SiteSelector(conditions=_conditions(text, text))
        note_old_spelling(text, selector.text)
        return selector
    selector, rest = _selector_prefix(text)
    if rest:
        raise PathError(f"{text!r} is not a site selector: {_SELECTOR_HELP}")
    return selector


_SELECTOR_HELP = "sites.NAME, sites.* or sites[FIELD=VALUE, ...], e.g. sites[host=nhs]"


def _selector_prefix(text: str) -> tuple[SiteSelector, str]:
    """The selector at the start of ``text`` and what follows it."""
    match = _SELECTOR.match(text)
    if match is None:
        raise PathError(f"{text!r} is not a site selector: {_SELECTOR_HELP}")
    rest = text[match.end() :]
    if match["every"]:
        return SiteSelector(), rest
    if match["quoted"]:
        return SiteSelector(name=tomllib.loads(f"v = {match['quoted']}")["v"]), rest
    if match["name"] is not None:
        return SiteSelector(name=match["name"]), rest
    return SiteSelector(conditions=_conditions(match["conditions"], text)), rest


def _conditions(body: str, text: str) -> tuple[tuple[str, Any], ...]:
    out: list[tuple[str, Any]] = []
    position = 0
    while position < len(body):
        match = _CONDITION.match(body, position)
        if match is None or match.end() == position:
            raise PathError(f"{text!r}: a condition is FIELD=VALUE, e.g. host=not_for_profit")
        out.append((match["field"], _condition_value(match["field"], match["value"], text)))
        position = match.end()
    if not out:
        raise PathError(f"{text!r}: no conditions; write sites.* for every site")
    return tuple(out)


def _condition_value(field: str, raw: str, text: str) -> Any:
    info = Site.model_fields.get(field)
    if info is None:
        raise PathError(
            f"{text!r}: cannot select sites by {field!r}", closest_names(field, Site.model_fields)
        )
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: a string
    try:
        annotation: Any = info.annotation
        TypeAdapter(annotation).validate_python(value, strict=True)
    except ValidationError:
        raise PathError(
            f"{text!r}: {field} cannot be {raw!r}; it is {_kind(info)}",
            closest_names(raw, [str(c) for c in get_args(info.annotation)]),
        ) from None
    return value


def _kind(info: FieldInfo) -> str:
    if get_origin(info.annotation) is Literal:
        return " or ".join(str(c) for c in get_args(info.annotation))
    annotation: Any = info.annotation
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(annotation, str(annotation))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) and re.fullmatch(_NAME, value) else repr(value)


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[^.\[\]\"*]+", name) else '"' + name.replace('"', '\\"') + '"'


# --- parameter paths -------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterPath:
    """A parsed path: the ``group`` (one of ``PARAMETER_GROUPS``, or ``sites``), the
    ``field``, and for a site field the ``sites`` selector."""

    text: str
    group: str
    field: str
    sites: SiteSelector | None = None

    @property
    def info(self) -> FieldInfo:
        """The schema's field: its type, bounds and description."""
        return _model(self.group).model_fields[self.field]

    def site_names(self, scenario: Scenario) -> tuple[str, ...]:
        """The sites of ``scenario`` the path sets (``()`` for a global parameter);
        ``PathError`` for an unknown site or conditions that select none."""
        if self.sites is None:
            return ()
        names = self.sites.select(scenario.sites)
        if not names:
            raise PathError(f"{self.sites.text} selects no site of scenario {scenario.name!r}")
        return names


def _model(group: str) -> type[BaseModel]:
    if group == "sites":
        return Site
    return Scenario.model_fields[group].annotation  # type: ignore[return-value]


@lru_cache(maxsize=4096)
def parse_path(text: str) -> ParameterPath:
    """The path ``text`` (see the module's docstring); ``PathError`` naming the
    closest valid group or field if it names nothing."""
    if text.startswith("sites") and text[5:6] in (".", "["):
        selector, rest = _selector_prefix(text)
        field = rest.removeprefix(".")
        if not rest.startswith(".") or not re.fullmatch(_NAME, field):
            raise PathError(f"{text!r}: a site parameter is SELECTOR.FIELD ({_SELECTOR_HELP})")
        return _checked(ParameterPath(text, "sites", field, selector))
    match = _GLOBAL.match(text)
    if match is None or match["group"] not in PARAMETER_GROUPS:
        group = text.split(".", 1)[0]
        raise PathError(
            f"{text!r} is not a parameter: GROUP.FIELD or SELECTOR.FIELD",
            closest_names(group, [*PARAMETER_GROUPS, "sites"]) if group != text else (),
        )
    return _checked(ParameterPath(text, match["group"], match["field"]))


def _checked(path: ParameterPath) -> ParameterPath:
    fields = _model(path.group).model_fields
    if path.field not in fields:
        where = "a site" if path.group == "sites" else path.group
        raise PathError(
            f"{path.text!r}: {where} has no field {path.field!r}",
            closest_names(path.field, fields),
        )
    return path


def site_path(site: str, field: str) -> str:
    """The path of one site's field, e.g. ``sites.F.n_peer_workers``."""
    return f"{SiteSelector(name=site).text}.{field}"


def known_paths(scenario: Scenario, numeric_only: bool = False) -> list[str]:
    """Every path of a field of ``scenario`` (``sites.*`` and each site by name), for
    suggestions; ``numeric_only`` leaves out switches, choices and text."""

    def wanted(info: FieldInfo) -> bool:
        return not numeric_only or info.annotation in (int, float)

    paths = [
        f"{group}.{name}"
        for group in PARAMETER_GROUPS
        for name, info in _model(group).model_fields.items()
        if wanted(info)
    ]
    site_fields = [n for n, i in Site.model_fields.items() if wanted(i)]
    for selector in [EVERY_SITE, *(SiteSelector(name=s).text for s in scenario.sites)]:
        paths += [f"{selector}.{n}" for n in site_fields]
    return paths


# --- getting and setting ---------------------------------------------------------------


def get_values(scenario: Scenario, path: str) -> tuple[Any, ...]:
    """The value at ``path``: one for a global parameter, one per selected site."""
    parsed = parse_path(path)
    if parsed.sites is None:
        return (getattr(getattr(scenario, parsed.group), parsed.field),)
    return tuple(getattr(scenario.sites[s], parsed.field) for s in parsed.site_names(scenario))


def get_value(scenario: Scenario, path: str) -> Any:
    """The value at ``path``, which must name one value (``PathError`` if it selects
    several sites)."""
    values = get_values(scenario, path)
    if len(values) != 1:
        raise PathError(f"{path!r} selects {len(values)} sites, not one value")
    return values[0]


def with_values(scenario: Scenario, values: Mapping[str, Any]) -> Scenario:
    """``scenario`` with each path of ``values`` set to its value (in order, so a
    later path overrides an earlier one), validated afresh: ``PathError`` for a path
    that names nothing, ``pydantic.ValidationError`` if the result breaks a rule."""
    groups: dict[str, dict[str, Any]] = {}
    sites: dict[str, Site | dict[str, Any]] = dict(scenario.sites)
    for text, value in values.items():
        path = parse_path(text)
        if path.sites is None:
            if path.group not in groups:
                groups[path.group] = getattr(scenario, path.group).model_dump()
            groups[path.group][path.field] = value
            continue
        for name in path.site_names(scenario):
            site = sites[name]
            table = site.model_dump() if isinstance(site, Site) else site
            table[path.field] = value
            sites[name] = table
    # Untouched groups and sites go in as they are: already valid, not revalidated.
    data: dict[str, Any] = {name: getattr(scenario, name) for name in Scenario.model_fields}
    data.update(groups, sites=sites)
    return Scenario.model_validate(data)
