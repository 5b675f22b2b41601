"""Load a scenario TOML file into a frozen, validated ``Scenario``.

A scenario file is either complete (global parameters, which default to the
ENRICH values, and sites that carry every required key) or a what-if that names
its parent and says only what changes::

    # What if the not-for-profit sites had honorary contracts, and site F two
    # more peer workers?
    extends = "enrich_trial.toml"          # the parent, relative to this file
    description = "honorary contracts at not-for-profit sites"

    [trial]                                # global parameters: only these change
    dur_support_after_discharge_weeks = 26

    [sites.F]                              # one site, by name: only these keys change
    n_peer_workers = 6

    [[sites_where]]                        # every site meeting all the conditions
    host = "not_for_profit"
    [sites_where.set]                      # ... gets these values
    honorary_contracts = true

The rules:

- ``extends`` is a path relative to the extending file. A parent may extend
  another file in turn; a file that ends up extending itself is an error naming
  the files in the circle, and so is a parent that does not exist.
- The file is merged onto its resolved parent key by key: tables merge, and any
  other value (a number, a string, an array) set in the file replaces the parent's.
  ``name`` and ``description`` are not inherited: ``name`` defaults to the file
  name and ``description`` to empty.
- ``[sites.NAME]`` changes the parent's site of that name. A name the parent does
  not have adds a site (after the parent's), which must then be complete.
- ``sites_remove = ["A", "B"]`` drops the parent's sites of those names before the
  file's own sites are merged (a file can remove every site and define its own).
- ``[[sites_where]]`` entries apply after that, in file order, each seeing what
  the earlier ones changed. Every key of an entry except ``set`` is a condition:
  a site key whose value must equal the site's (a key the site leaves out counts
  as its default); an entry with no conditions applies to every site. These are
  the conditions of the site selector ``sites[host=not_for_profit]`` written
  everywhere else (``simulation.paths``), as TOML keys. The
  ``[sites_where.set]`` table gives its values to every matching site. An entry
  that matches no site is an error (most likely a typo). ``sites_where`` also works
  in a file that extends nothing, e.g. to fill in sites of a few types.

Loading runs in three steps:

1. ``scenarios.inputs.read_toml``: file -> dict (missing or unreadable file, bad
   UTF-8, malformed TOML);
2. ``_resolve``: dict -> dict (the ``extends`` chain, merging, ``sites_remove``,
   ``sites_where``, the default name), remembering which file set each value;
3. ``_validate``: dict -> ``Scenario`` (unknown keys, types, ranges, required fields).

Every failure raises ``ScenarioError``, whose message lists all problems at once,
one line each, as ``FILE: dotted.key: value VALUE: what is allowed``, where FILE is
the file that set the offending value (a value inherited from a parent names the
parent).
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scenarios.claims import CLAIM_KEY, Claim, parse_claim
from scenarios.inputs import TOP_LEVEL_KEYS, InputError, read_toml
from scenarios.messages import describe, show, suggest_among, toml_type
from simulation.params import (
    CONFIGURED_SITE_KEYS,
    PARAMETER_GROUPS,
    SERVICE_ONLY_KEYS,
    SITE_KEY_OF_MODE,
    TRIAL_ONLY_KEYS,
    Scenario,
    Site,
)
from simulation.paths import SiteSelector

DEFAULT_SCENARIO_FILE = "enrich_trial.toml"
# Keys of the file format that are not scenario parameters: resolved, then removed.
# A what-if's [claim] (scenarios.claims) is checked with its file and removed; it is
# never inherited.
EXTENSION_KEYS: tuple[str, ...] = ("extends", "sites_remove", "sites_where", CLAIM_KEY)
_NOT_INHERITED: tuple[str, ...] = ("name", "description")
_TOP_LEVEL = frozenset(EXTENSION_KEYS) | frozenset(_NOT_INHERITED)
# A file none of whose top-level keys is one of these is no scenario file (read_toml).
TOP_LEVEL_KEYS["scenario"] = frozenset(Scenario.model_fields) | frozenset(EXTENSION_KEYS)
# The longest ``extends`` chain (files above the one loaded): deeper is surely a mistake
# (a generated chain, a loop through links), and would exhaust Python's recursion.
MAX_EXTENDS_DEPTH = 32
# Where each global parameter and site key belongs, for a key written in the wrong table.
_GROUP_OF: dict[str, str] = {
    name: group
    for group in reversed(PARAMETER_GROUPS)
    for name in Scenario.model_fields[group].annotation.model_fields  # type: ignore[union-attr]
}
_SITE_KEYS = frozenset(Site.model_fields)

Key = tuple[str, ...]


class ScenarioError(InputError):
    """A scenario file that cannot be read or does not describe a valid scenario."""


def default_scenario_path() -> Path:
    """The ENRICH trial scenario shipped inside the ``scenarios`` package."""
    return Path(str(files("scenarios") / DEFAULT_SCENARIO_FILE))


COSTS_FILE_PREFIX = "costs_"


def library() -> dict[str, Path]:
    """The scenario files shipped in the ``scenarios`` package (the ENRICH trial and
    the ready what-ifs), by name (the file name without ``.toml``), in name order.
    Unit costs files (``costs_*.toml``, ``scenarios.costs``) live beside them and are
    not scenarios."""
    folder = default_scenario_path().parent
    return {
        path.stem: path
        for path in sorted(folder.glob("*.toml"))
        if not path.name.startswith(COSTS_FILE_PREFIX)
    }


def load_scenario(path: str | Path | None = None, configuration: str | None = None) -> Scenario:
    """Read, resolve and validate a scenario file; ``None`` means the ENRICH default.

    ``configuration`` selects one of the file's site configurations in place of the
    one it selects (``[site_configurations]``); the scenario remembers its file, so
    ``Scenario.configured(name)`` can make it under the others."""
    source = default_scenario_path() if path is None else Path(path)
    resolved = _resolve(source)
    table = resolved.data.get("site_configurations")
    if configuration is not None and table is None:
        raise ScenarioError(
            source,
            [
                f"{source}: site configuration {configuration!r} was asked for, but the "
                "scenario offers no site configurations ([site_configurations])"
            ],
        )
    if isinstance(table, dict):
        # The configuration is applied once, in the file that first offers it, before
        # any what-if's changes; what the chain finally selects (or the caller asks
        # for) and its final options are what that application must use.
        final = copy.deepcopy(table)
        if configuration is not None:
            final["selected"] = configuration
        _check_selected(resolved, final, source, asked=configuration is not None)
        sites = resolved.data.get("sites")
        known = len(resolved.problems)
        if isinstance(final.get("options"), dict) and isinstance(sites, dict):
            _check_configured_sites(resolved, final["options"], list(sites))
        # (With an option naming an unknown site, this pass reports it, by file.)
        if len(resolved.problems) == known and final != resolved.applied_configuration:
            resolved = _resolve(source, final=final)
            resolved.data["site_configurations"]["selected"] = final.get("selected")
    scenario = _validate(resolved, source)
    if scenario.site_configurations is not None:
        stamp = tuple(_stamp(p) for p in dict.fromkeys(resolved.files))
        scenario._reconfigure = functools.partial(_reconfigured, _identity(source), stamp)
    return scenario


def _check_selected(resolved: _Resolved, table: dict[str, Any], source: Path, asked: bool) -> None:
    """``ScenarioError`` naming the file that selected it if the configuration the
    chain finally selects (or the caller asks for) is not one of its options."""
    name, options = table.get("selected"), table.get("options")
    if not isinstance(options, dict) or not isinstance(name, str) or name in options:
        return  # malformed tables are validation's to report
    choices = ", ".join(map(str, options))
    if asked:
        line = f"{source}: site configuration {name!r} was asked for; the options: {choices}"
    else:
        where = resolved.origin_of(("site_configurations", "selected"), False)
        line = (
            f"{where}: site_configurations.selected: value {show(name)}: not one of the "
            f"options: {choices}"
        )
    raise ScenarioError(source, [line])


def _stamp(path: Path) -> tuple[str, int, int]:
    info = path.stat()
    return (str(_identity(path)), info.st_mtime_ns, info.st_size)


def _reconfigured(source: Path, stamp: tuple[tuple[str, int, int], ...], name: str) -> Scenario:
    """``source`` loaded under site configuration ``name``, if none of the files it was
    first loaded from has changed since (a scenario never mixes two versions)."""
    for path, mtime_ns, size in stamp:
        try:
            now = _stamp(Path(path))
        except OSError:
            now = None
        if now != (path, mtime_ns, size):
            raise ValueError(
                f"scenario file {path} changed since the scenario was loaded, so it cannot "
                "be made under another site configuration; load it again"
            )
    return _load_configured(source, stamp, name)


@functools.lru_cache(maxsize=64)
def _load_configured(source: Path, stamp: tuple[tuple[str, int, int], ...], name: str) -> Scenario:
    # Cached for the process (keyed by the files' versions): calibration asks for the
    # same few again and again.
    return load_scenario(source, name)


def load_claim(path: str | Path) -> Claim | None:
    """The ``[claim]`` of the file ``path`` itself (never a parent's: a claim is not
    inherited), or ``None`` if it makes none; ``ScenarioError`` naming the file, key,
    value and what is allowed if the claim is malformed (``scenarios.claims``)."""
    source = Path(path)
    raw = read_toml(source, "scenario", ScenarioError)
    if CLAIM_KEY not in raw:
        return None
    claim, problems = parse_claim(source, raw[CLAIM_KEY])
    if claim is None:
        raise ScenarioError(source, problems)
    return claim


def scenario_parent(path: str | Path) -> Path | None:
    """The file that ``path`` extends (as a path usable from here), or ``None``.

    Reads only ``path`` itself; a parent that does not exist is still returned
    (``load_scenario`` reports it)."""
    source = Path(path)
    extends = read_toml(source, "scenario", ScenarioError).get("extends")
    if not isinstance(extends, str):
        return None
    return _parent_path(source, extends)


# --- step 2: resolving inheritance ----------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    """A file that set a value: its path as shown in messages, and its place in the
    ``extends`` chain (0 for the first ancestor; a child's is higher)."""

    path: Path
    generation: int


@dataclass
class _Resolved:
    """A file's scenario dict after inheritance, with where each part came from."""

    data: dict[str, Any]
    path: Path
    generation: int = 0
    origins: dict[Key, _Origin] = field(default_factory=dict)  # value -> file that set it
    tables: dict[Key, _Origin] = field(default_factory=dict)  # table -> file that began it
    problems: list[str] = field(default_factory=list)  # found while resolving
    # Sites a what-if added, with the site names its parent had (for typo hints).
    new_sites: dict[str, tuple[Path, list[str]]] = field(default_factory=dict)
    removed_every_site: bool = False  # sites_remove named every site of the parent
    files: list[Path] = field(default_factory=list)  # every file read, root first
    # The [site_configurations] table applied (by the file that first offers one), and
    # whether it could not be (an unknown option, a missing travel time).
    applied_configuration: dict[str, Any] | None = None
    configuration_failed: bool = False

    def origin_of(self, key: Key, missing: bool) -> Path:
        """The file to name for a problem at ``key``: for a missing key, the file that
        began its table; otherwise the file that set the value (for a table, the most
        derived file that set anything in it)."""
        if missing:
            return self._table_origin(key[:-1])
        if key in self.origins:
            return self.origins[key].path
        inside = [o for k, o in self.origins.items() if k[: len(key)] == key]
        if inside:
            return max(inside, key=lambda o: o.generation).path
        return self._table_origin(key)

    def _table_origin(self, key: Key) -> Path:
        for n in range(len(key), 0, -1):
            if key[:n] in self.tables:
                return self.tables[key[:n]].path
        return self.path


def _resolve(
    path: Path, chain: tuple[tuple[Path, Path], ...] = (), final: dict[str, Any] | None = None
) -> _Resolved:
    """Read ``path`` and apply it onto its resolved parent, if it has one.

    ``chain`` holds (identity, shown path) of the files that extend this one, to
    catch circles; ``final`` is the site configurations table to apply (the
    chain's final one) in place of the first file's own. Problems that make the
    result meaningless (an unreadable file, a missing parent, a circle) raise
    ``ScenarioError``; the others are collected.
    """
    raw = read_toml(path, "scenario", ScenarioError)
    extensions = {key: raw.pop(key) for key in EXTENSION_KEYS if key in raw}
    claim_problems = parse_claim(path, extensions[CLAIM_KEY])[1] if CLAIM_KEY in extensions else []
    here = (_identity(path), path)
    if "extends" in extensions:
        parent = _resolve_parent(path, extensions["extends"], (*chain, here), final)
        resolved = _Resolved(parent.data, path, parent.generation + 1)
        resolved.origins, resolved.tables = parent.origins, parent.tables
        resolved.problems = parent.problems
        resolved.files = parent.files
        resolved.applied_configuration = parent.applied_configuration
        resolved.configuration_failed = parent.configuration_failed
        origin = _Origin(path, resolved.generation)
        for key in _NOT_INHERITED:
            _forget(resolved, (key,))
            resolved.data.pop(key, None)
        parent_sites = resolved.data.get("sites")
        parent_names = list(parent_sites) if isinstance(parent_sites, dict) else []
        if "sites_remove" in extensions:
            _remove_sites(resolved, extensions["sites_remove"], origin)
        kept = resolved.data.get("sites")
        child_sites = raw.get("sites")
        if isinstance(child_sites, dict):
            for name in child_sites:
                if not isinstance(kept, dict) or name not in kept:
                    resolved.new_sites[name] = (path, [n for n in parent_names if n != name])
        _merge(resolved, resolved.data, raw, (), origin)
    else:
        resolved = _Resolved({}, path)
        origin = _Origin(path, 0)
        _merge(resolved, resolved.data, raw, (), origin)
        if "sites_remove" in extensions:
            resolved.problems.append(
                f"{path}: sites_remove: value {show(extensions['sites_remove'])}: this file "
                "extends no other, so there are no inherited sites to remove"
            )
    resolved.files.append(path)
    _apply_site_rules(resolved, raw, extensions, origin, final)
    resolved.problems.extend(str(p) for p in claim_problems)
    if "name" not in resolved.data:
        resolved.data["name"] = path.stem
        resolved.origins[("name",)] = origin
    return resolved


def _apply_site_rules(
    resolved: _Resolved,
    raw: dict[str, Any],
    extensions: dict[str, Any],
    origin: _Origin,
    final: dict[str, Any] | None,
) -> None:
    """The site configuration (in the first file that offers one), then the file's
    ``sites_where``."""
    if "site_configurations" in raw and resolved.applied_configuration is None:
        _apply_configuration(resolved, raw, origin, final)
    if "sites_where" in extensions:
        _apply_sites_where(resolved, extensions["sites_where"], origin)


def _resolve_parent(
    child: Path, extends: Any, chain: tuple[tuple[Path, Path], ...], final: dict[str, Any] | None
) -> _Resolved:
    if not isinstance(extends, str) or not extends:
        allowed = "the parent scenario file's path, relative to this file"
        kind = "empty" if extends == "" else f"wrong type ({toml_type(extends)})"
        raise ScenarioError(
            child, [f"{child}: extends: value {show(extends)}: {kind}, allowed: {allowed}"]
        )
    parent = _parent_path(child, extends)
    if len(chain) > MAX_EXTENDS_DEPTH:
        first, last = chain[0][1], chain[-1][1]
        raise ScenarioError(
            child,
            [
                f"{child}: extends: value {show(extends)}: more than {MAX_EXTENDS_DEPTH} "
                f"parents in a row ({first} -> ... -> {last} -> {parent}); at most "
                f"{MAX_EXTENDS_DEPTH} are allowed"
            ],
        )
    if not parent.is_file():
        reason = "no such scenario file" if not parent.exists() else "not a file"
        hint = ""
        shipped = library().get(Path(extends).stem)
        if shipped is not None and Path(extends).name == shipped.name:
            hint = f"; the library's {shipped.name} is {shipped}"
        raise ScenarioError(
            child,
            [f"{child}: extends: value {show(extends)}: {reason} (looked for {parent}){hint}"],
        )
    identity = _identity(parent)
    for index, (seen, _) in enumerate(chain):
        if seen == identity:
            circle = " -> ".join(str(shown) for _, shown in chain[index:])
            raise ScenarioError(
                child,
                [
                    f"{child}: extends: value {show(extends)}: files extend each other in "
                    f"a circle: {circle} -> {parent}"
                ],
            )
    return _resolve(parent, chain, final)


def _parent_path(child: Path, extends: str) -> Path:
    return Path(os.path.normpath(child.parent / extends))


def _identity(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:  # pragma: no cover - e.g. a symlink loop; compare as written
        return path.absolute()


def _merge(
    resolved: _Resolved, base: dict[str, Any], over: dict[str, Any], at: Key, origin: _Origin
) -> None:
    """Merge ``over`` into ``base`` in place: tables key by key, other values replace."""
    for key, value in over.items():
        here = (*at, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(resolved, base[key], value, here, origin)
        else:
            _forget(resolved, here)
            base[key] = copy.deepcopy(value)
            _remember(resolved, here, value, origin)


def _remember(resolved: _Resolved, at: Key, value: Any, origin: _Origin) -> None:
    if isinstance(value, dict):
        resolved.tables[at] = origin
        for key, inner in value.items():
            _remember(resolved, (*at, key), inner, origin)
    else:
        resolved.origins[at] = origin


def _forget(resolved: _Resolved, at: Key) -> None:
    for record in (resolved.origins, resolved.tables):
        for key in [k for k in record if k[: len(at)] == at]:
            del record[key]


def _is_array_of(
    resolved: _Resolved, origin: _Origin, key: str, value: Any, *, item: type, allowed: str
) -> bool:
    """Whether ``key``'s value is an array of ``item``s; if not, the problem is recorded
    (``allowed`` says what is)."""
    ok = isinstance(value, list) and all(isinstance(v, item) for v in value)
    if not ok:
        resolved.problems.append(
            f"{origin.path}: {key}: value {show(value)}: wrong type ({toml_type(value)}), "
            f"allowed: {allowed}"
        )
    return ok


def _remove_sites(resolved: _Resolved, names: Any, origin: _Origin) -> None:
    path = origin.path
    allowed = 'an array of site names, e.g. ["A", "B"]'
    if not _is_array_of(resolved, origin, "sites_remove", names, item=str, allowed=allowed):
        return
    sites = resolved.data.get("sites")
    sites = sites if isinstance(sites, dict) else {}
    for name in names:
        if name in sites:
            del sites[name]
            _forget(resolved, ("sites", name))
            if not sites:  # this file left no site: it, not the parent, is to blame
                resolved.tables[("sites",)] = origin
                resolved.removed_every_site = True
        else:
            resolved.problems.append(
                f"{path}: sites_remove: value {show(name)}: no such site in the parent; "
                f"{suggest_among(name, list(sites)).replace('valid keys', 'sites')}"
            )
    _drop_removed_from_configurations(resolved, set(names))


def _drop_removed_from_configurations(resolved: _Resolved, removed: set[str]) -> None:
    """Removed sites leave the inherited site configurations; configurations that
    then name no site at all (a file that replaced every trial site) go too."""
    table = resolved.data.get("site_configurations")
    options = table.get("options") if isinstance(table, dict) else None
    if not isinstance(options, dict):
        return
    named = False
    for option in options.values():
        if not isinstance(option, dict):
            return  # malformed: validation reports it
        for kind in ("not_for_profit", "rural"):
            if isinstance(option.get(kind), list):
                option[kind] = [n for n in option[kind] if n not in removed]
                named = named or bool(option[kind])
    if not named:
        del resolved.data["site_configurations"]
        _forget(resolved, ("site_configurations",))


def _apply_configuration(
    resolved: _Resolved, raw: dict[str, Any], origin: _Origin, final: dict[str, Any] | None
) -> None:
    """Write the selected site configuration's host, geography and travel time into
    every site (before this file's ``sites_where``, so what-ifs select by them), from
    ``final`` (the chain's final table) or else this file's. Malformed tables are
    left for validation to report."""
    table = final if final is not None else resolved.data.get("site_configurations")
    if not isinstance(table, dict):
        return
    resolved.applied_configuration = copy.deepcopy(table)
    name, options = table.get("selected"), table.get("options")
    sites = resolved.data.get("sites")
    if not (isinstance(name, str) and isinstance(options, dict) and isinstance(sites, dict)):
        return
    option = options.get(name)
    if not isinstance(option, dict):
        at = ("site_configurations", "selected")
        resolved.configuration_failed = True
        resolved.problems.append(
            f"{resolved.origin_of(at, False)}: site_configurations.selected: value "
            f"{show(name)}: not one of the options: {', '.join(map(str, options))}"
        )
        return
    own = raw.get("sites")
    for site_name, site in sites.items():
        if not isinstance(site, dict):
            continue
        written = own.get(site_name) if isinstance(own, dict) else None
        written = written if isinstance(written, dict) else {}
        for key in CONFIGURED_SITE_KEYS:
            if key in written:
                resolved.problems.append(
                    f"{origin.path}: sites.{site_name}.{key}: value {show(written[key])}: "
                    f"set by the site configuration this file offers ({name!r} selected); "
                    "remove it here, or change it in a what-if that extends this file"
                )
        values = configured_values(table, option, site_name)
        resolved.configuration_failed |= "dur_travel_min" not in values
        for key, value in values.items():
            site[key] = value
            _remember(resolved, ("sites", site_name, key), value, origin)


def configured_values(table: dict[str, Any], option: dict[str, Any], site: str) -> dict[str, Any]:
    """A site's host, geography and (where the table gives it) travel time under
    ``option``: named sites are not-for-profit hosted or rural, the rest NHS, urban."""

    def named(kind: str) -> bool:
        names = option.get(kind)
        return isinstance(names, list) and site in names

    geography = "rural" if named("rural") else "urban"
    values: dict[str, Any] = {
        "host": "not_for_profit" if named("not_for_profit") else "nhs",
        "geography": geography,
    }
    travel = table.get(f"dur_travel_{geography}_min")
    if isinstance(travel, int | float):
        values["dur_travel_min"] = float(travel)
    return values


def _check_configured_sites(resolved: _Resolved, options: dict[str, Any], sites: list[str]) -> None:
    """Every site an option names must be a site of the scenario."""
    for option_name, option in options.items():
        for kind in ("not_for_profit", "rural"):
            names = option.get(kind) if isinstance(option, dict) else None
            for site in names if isinstance(names, list) else []:
                if site in sites:
                    continue
                key = ("site_configurations", "options", option_name, kind)
                hint = suggest_among(str(site), sites).replace("valid keys", "sites")
                resolved.problems.append(
                    f"{resolved.origin_of(key, False)}: {'.'.join(key)}: value {show(site)}: "
                    f"no such site; {hint}"
                )


def _apply_sites_where(resolved: _Resolved, entries: Any, origin: _Origin) -> None:
    allowed = "an array of tables, each begun with [[sites_where]]"
    if not _is_array_of(resolved, origin, "sites_where", entries, item=dict, allowed=allowed):
        return
    sites = resolved.data.get("sites")
    if not isinstance(sites, dict):
        return  # validation reports the missing or malformed sites
    for number, entry in enumerate(entries, start=1):
        _apply_sites_where_entry(resolved, sites, f"sites_where[{number}]", entry, origin)


def _apply_sites_where_entry(
    resolved: _Resolved, sites: dict[str, Any], label: str, entry: dict[str, Any], origin: _Origin
) -> None:
    """Check one ``[[sites_where]]`` entry, then make its changes to every site that
    meets its conditions."""
    path = origin.path
    conditions = {k: v for k, v in entry.items() if k != "set"}
    bad_conditions = _site_value_problems(resolved, conditions, f"{label}.", path, ("set",))
    changes, bad_changes = _sites_where_changes(resolved, entry, label, path)
    if bad_conditions or changes is None:
        return  # which sites were meant, or what for, is unclear: nothing to match
    for name in _matching_sites(resolved, sites, conditions, label, path):
        for key, value in changes.items():
            if key not in bad_changes:
                sites[name][key] = copy.deepcopy(value)
                resolved.origins[("sites", name, key)] = origin


def _sites_where_changes(
    resolved: _Resolved, entry: dict[str, Any], label: str, path: Path
) -> tuple[dict[str, Any] | None, set[str]]:
    """The ``set`` table of a ``[[sites_where]]`` entry (``None`` if it is missing or
    not a table) and the keys among it whose values are bad; problems are reported."""
    changes = entry.get("set")
    if "set" not in entry:
        resolved.problems.append(
            f"{path}: {label}.set: missing: required, allowed: a table of site keys and "
            "their new values, begun with [sites_where.set] after the conditions"
        )
        return None, set()
    if not isinstance(changes, dict):
        resolved.problems.append(
            f"{path}: {label}.set: value {show(changes)}: wrong type "
            f"({toml_type(changes)}), allowed: a table of site keys and their new values"
        )
        return None, set()
    return changes, _site_value_problems(resolved, changes, f"{label}.set.", path, ())


def _matching_sites(
    resolved: _Resolved, sites: dict[str, Any], conditions: dict[str, Any], label: str, path: Path
) -> list[str]:
    """The names of the sites that meet ``conditions``; none is a problem, reported."""
    selector = SiteSelector.from_conditions(conditions)
    matched = [n for n, site in sites.items() if isinstance(site, dict) and selector.matches(site)]
    if not matched:
        wanted = " and ".join(f"{k} = {show(v)}" for k, v in conditions.items())
        resolved.problems.append(
            f"{path}: {label}: matches no site: none of the {len(sites)} sites has {wanted}"
            if conditions
            else f"{path}: {label}: matches no site: there are no sites"
        )
    return matched


def _site_value_problems(
    resolved: _Resolved, values: dict[str, Any], prefix: str, path: Path, extra: tuple[str, ...]
) -> set[str]:
    """Check each value as the ``Site`` key it names; report problems, return bad keys."""
    try:
        Site.model_validate(values, strict=True)
    except ValidationError as e:
        bad = set()
        for err in e.errors(include_url=False):
            if err["type"] == "missing" or not err["loc"]:
                continue  # a condition or a change names only some keys
            bad.add(str(err["loc"][0]))
            resolved.problems.append(f"{path}: {describe(err, Site, prefix, extra)}")
        return bad
    return set()


# --- step 3: validating the result ----------------------------------------------------


def _mode_problems(resolved: _Resolved) -> list[str]:
    """Keys of the other mode, and each mode's required site key, as problems.

    A key of the other mode that a parent set before the file that switched the
    mode (``mode = "service"`` in a file extending the trial) belongs to that parent
    and is dropped; one set by the switching file or after it is a mistake.
    """
    data = resolved.data
    mode = data.get("mode", "trial")
    if mode not in SITE_KEY_OF_MODE:
        return []  # validation reports the value
    set_by = resolved.origins.get(("mode",))
    switched = set_by.generation if set_by is not None else -1
    own = TRIAL_ONLY_KEYS if mode == "service" else SERVICE_ONLY_KEYS
    other = "trial" if mode == "service" else "service"
    allowed = (
        "in service mode: [service] and sites.NAME.referrals_per_year"
        if mode == "service"
        else "in trial mode: [trial] and sites.NAME.n_participants; [service] and "
        'referrals_per_year need mode = "service" at the top'
    )
    found = data.get("sites")
    sites: dict[str, Any] = found if isinstance(found, dict) else {}
    problems = []
    for key in _mode_keys(own, sites):
        table: Any = data
        for part in key[:-1]:
            table = table.get(part) if isinstance(table, dict) else None
        if not isinstance(table, dict) or key[-1] not in table:
            continue
        origin = _origin_record(resolved, key)
        if origin is not None and origin.generation < switched:
            del table[key[-1]]  # the parent's, for its own mode
            _forget(resolved, key)
            continue
        where = resolved.origin_of(key, False)
        problems.append(
            f"{where}: {'.'.join(key)}: value {show(table[key[-1]])}: a {other}-only key, "
            f"not allowed in a {mode} scenario (mode = {show(mode)}); allowed {allowed}"
        )
    return problems + _missing_site_keys(resolved, mode, sites, set_by)


def _mode_keys(dotted_keys: tuple[str, ...], sites: dict[str, Any]) -> list[Key]:
    """The keys ``dotted_keys`` name (``sites.*.KEY``: at every site)."""
    keys: list[Key] = []
    for dotted in dotted_keys:
        parts = tuple(dotted.split("."))
        if parts[:2] == ("sites", "*"):
            keys += [("sites", n, *parts[2:]) for n, s in sites.items() if isinstance(s, dict)]
        else:
            keys.append(parts)
    return keys


def _missing_site_keys(
    resolved: _Resolved, mode: str, sites: dict[str, Any], set_by: _Origin | None
) -> list[str]:
    """Each site without the key its mode requires, as a problem."""
    switched = set_by.generation if set_by is not None else -1
    problems = []
    needed = SITE_KEY_OF_MODE[mode]
    what = (
        "an integer, 0 to 100000 (participants recruited)"
        if mode == "trial"
        else "a number, 0 to 100000 (referrals a year at the full rate)"
    )
    for name, site in sites.items():
        if isinstance(site, dict) and needed not in site:
            where = resolved.origin_of(("sites", name, needed), True)
            began = resolved.tables.get(("sites", name))
            if set_by is not None and (began is None or began.generation < switched):
                where = set_by.path  # a parent's site, kept by the file that set the mode
            problems.append(
                f"{where}: sites.{name}.{needed}: missing: required in {mode} mode, allowed: {what}"
            )
    return problems


def _origin_record(resolved: _Resolved, key: Key) -> _Origin | None:
    """The (most derived) file that set ``key`` or anything inside it."""
    if key in resolved.origins:
        return resolved.origins[key]
    inside = [o for k, o in resolved.origins.items() if k[: len(key)] == key]
    return max(inside, key=lambda o: o.generation) if inside else None


def _validate(resolved: _Resolved, path: Path) -> Scenario:
    problems = list(resolved.problems)
    mode_problems = _mode_problems(resolved)
    problems += mode_problems
    # Site configurations naming unknown sites, or an unknown option, are reported
    # above by file and key; the keys a configuration that failed would have set
    # are then missing at every site, which says nothing new.
    reported = any(": site_configurations.options." in p for p in problems)
    failed = resolved.configuration_failed
    try:
        # Strict: TOML is typed, so "3" for a count is a mistake, not something to coerce.
        scenario = Scenario.model_validate(resolved.data, strict=True)
    except ValidationError as e:
        hinted: set[str] = set()
        for err in e.errors(include_url=False):
            key = tuple(str(part) for part in err["loc"])
            missing = err["type"] == "missing"
            if missing and len(key) == 3 and key[0] == "sites" and key[1] not in hinted:
                hinted.add(key[1])
                problems.extend(_new_site_hint(resolved, key[1]))
            source = resolved.origin_of(key, missing)
            if key == ("sites",) and err["type"] == "too_short":
                removed = " (sites_remove removed every site of the parent)"
                problems.append(
                    f"{source}: sites: no site left: a scenario needs at least one"
                    + (removed if resolved.removed_every_site else "")
                )
                continue
            if reported and "site_configurations.options." in str(err.get("msg", "")):
                continue
            if mode_problems and " mode" in str(err.get("msg", "")) and not key:
                continue  # the mode's keys: reported above, by file and key
            if failed and (
                (missing and key[0] == "sites" and key[-1] in CONFIGURED_SITE_KEYS)
                or "is not one of the options" in str(err.get("msg", ""))
            ):
                continue
            line = f"{source}: {describe(err, extra_keys=EXTENSION_KEYS)}"
            if err["type"] == "extra_forbidden":
                line += _belongs_hint(key)
            problems.append(line)
    if problems:
        raise ScenarioError(path, problems)
    return scenario


def _belongs_hint(key: Key) -> str:
    """For an unknown key that is a known one in the wrong table: where it belongs."""
    name = key[-1]
    if len(key) > 1 and name in _TOP_LEVEL:
        return f" ({name} belongs at the top, above the first [table] header)"
    here = key[0] if len(key) == 2 else "sites" if key[0] == "sites" else None
    if name in _GROUP_OF and here != _GROUP_OF[name]:
        return f" ({name} belongs in [{_GROUP_OF[name]}])"
    if name in _SITE_KEYS and not (key[0] == "sites" and len(key) == 3):
        return (
            f" ({name} is a site key: it belongs in [sites.NAME], or in [sites_where.set] "
            "for several sites)"
        )
    return ""


def _new_site_hint(resolved: _Resolved, name: str) -> list[str]:
    """For a site a what-if added that lacks keys: say it is new, and which parent site
    it may have meant (``[sites.f]`` for ``[sites.F]``). Nothing for other sites."""
    if name not in resolved.new_sites:
        return []
    path, parent_names = resolved.new_sites[name]
    by_case = {n.lower(): n for n in parent_names}
    close = difflib.get_close_matches(name.lower(), list(by_case), n=1, cutoff=0.6)
    guess = f"; did you mean sites.{by_case[close[0]]}?" if close else ""
    return [
        f"{path}: sites.{name}: a new site (the parent has no site {name!r}), "
        f"so it needs every required key{guess}"
    ]
