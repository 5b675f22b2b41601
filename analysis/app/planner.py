"""The planner behind the app's planner mode: levers, what-ifs, and their comparison.

A planner starts from a scenario file (the ENRICH trial, ``load_scenario(None)``,
or any trial or service file), changes planner levers per site or per group of
sites (``set_lever``, ``scale_lever``), and compares the baseline with the what-if
by common random numbers (``compare_whatif``), exactly as ``peersim compare``
does: the same runs give the same ``comparison.csv``, ``brief.md`` and figures.
The what-if downloads as a scenario file (``WhatIf.to_toml``) that ``peersim
validate`` accepts from any folder.

Nothing here imports solara: the page wraps these functions, the tests call them.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, ParamSpec, TypeVar

import pandas as pd
from annotated_types import Ge, Le
from pydantic import ValidationError

from analysis.compare import COMPARE_TABLES, OVERALL, comparison_jobs, paired_sites
from analysis.comparison_run import (
    DEFAULT_DISCOUNT_RATE,
    Money,
    comparison_figures,
    money_comparison,
    outcome_comparison,
)
from analysis.figures import DPI, PNG_COMPRESS_LEVEL
from analysis.resources import RESOURCE_LABELS
from scenarios.costs import Costs
from scenarios.loader import (
    COSTS_FILE_PREFIX,
    ScenarioError,
    default_scenario_path,
    library,
    load_scenario,
)
from simulation import Scenario
from simulation.executors import InlineExecutor
from simulation.outcomes import heading
from simulation.params import Site, TrialDesign
from simulation.paths import PathError, parse_selector, site_path
from simulation.rng import DEFAULT_SEED
from simulation.runner import LazyJobs, run_jobs

__all__ = [
    "LEVERS",
    "Lever",
    "PlanError",
    "PlannerComparison",
    "WhatIf",
    "changes_text",
    "compare_whatif",
    "costs_choices",
    "posterior_choices",
    "scale_lever",
    "scenario_choices",
    "set_lever",
]

MIN_REPLICATES = 2  # an interval needs at least two paired differences (as peersim compare)
TRIAL_PREFIX = "trial."
# Where calibrations (folders holding a posterior.parquet) are looked for, under the
# project's folder and the current one.
POSTERIOR_FOLDERS: tuple[str, ...] = ("docs", "results")
POSTERIOR_FILE = "posterior.parquet"  # calibration.posterior.POSTERIOR_FILE
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

Progress = Callable[[int, int], None]


class PlanError(ValueError):
    """A what-if the planner cannot make or compare, in one line naming the site,
    lever, value and what is allowed."""


# --- levers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Lever:
    """One planner lever, in plain language.

    ``field``: the ``simulation.params.Site`` field it sets (scope ``"site"``), or
    the trial parameter's path ``trial.FIELD`` (scope ``"trial"``, one value for
    every site). ``min``/``max`` are the parameter's own bounds (its pydantic
    ``ge``/``le``), ``None`` where it has none; ``step`` is the step a control
    offers. ``short`` names it in legends (``changes_text``).
    """

    field: str
    label: str
    short: str
    kind: Literal["select", "bool", "int", "float"]
    scope: Literal["site", "trial"]
    options: tuple[tuple[str, str], ...] = ()  # (value, label) of a select
    min: float | None = None
    max: float | None = None
    step: float | None = None
    help: str = ""

    @property
    def name(self) -> str:
        """The parameter's own name (``field`` without ``trial.``)."""
        return self.field.removeprefix(TRIAL_PREFIX)

    def option_label(self, value: str) -> str:
        return dict(self.options)[value]

    def text(self, value: Any) -> str:
        """``value`` as the planner reads it."""
        if self.kind == "select":
            return str(value)
        if self.kind == "bool":
            return "yes" if value else "no"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return f"{value:g}" if isinstance(value, float) else str(value)


def _bounds(model: type[Site] | type[TrialDesign], name: str) -> tuple[float | None, float | None]:
    """The ``ge`` and ``le`` bounds of a pydantic field."""
    lo = hi = None
    for m in model.model_fields[name].metadata:
        if isinstance(m, Ge):
            lo = float(m.ge)  # type: ignore[arg-type]
        elif isinstance(m, Le):
            hi = float(m.le)  # type: ignore[arg-type]
    return lo, hi


def _lever(
    field: str,
    label: str,
    short: str,
    kind: Literal["select", "bool", "int", "float"],
    *,
    step: float | None = None,
    options: tuple[tuple[str, str], ...] = (),
    note: str = "",
) -> Lever:
    trial = field.startswith(TRIAL_PREFIX)
    model: type[Site] | type[TrialDesign] = TrialDesign if trial else Site
    name = field.removeprefix(TRIAL_PREFIX)
    lo, hi = _bounds(model, name) if kind in ("int", "float") else (None, None)
    description = model.model_fields[name].description or ""
    return Lever(
        field,
        label,
        short,
        kind,
        "trial" if trial else "site",
        options,
        lo,
        hi,
        step,
        f"{description}{'; ' + note if note else ''}",
    )


LEVERS: tuple[Lever, ...] = (
    _lever(
        "host",
        "Peer workers employed by",
        "host",
        "select",
        options=(("nhs", "the NHS trust"), ("not_for_profit", "a not-for-profit organisation")),
    ),
    _lever(
        "honorary_contracts",
        "Honorary NHS contracts for the peer workers (records access and ward authority)",
        "honorary contracts",
        "bool",
        note="at a not-for-profit host it lifts the host's barriers (M4); at any host it "
        "gives every peer worker records access",
    ),
    _lever(
        "share_records_access",
        "Peer workers with access to electronic notes (share, 0-1)",
        "records access",
        "float",
        step=0.05,
        note="at a not-for-profit host without honorary contracts the scenario's "
        "ward.share_records_access_nfp applies instead",
    ),
    _lever(
        "supervisor_h_per_week",
        "Coordinator hours per week, all coordinators (h)",
        "coordinator hours",
        "float",
        step=1.0,
    ),
    _lever(
        "team_preparation",
        "Team preparation delivered (0 none - 1 the full programme)",
        "team preparation",
        "float",
        step=0.1,
    ),
    _lever("n_peer_workers", "Peer workers at the site (n)", "peer workers", "int", step=1),
    _lever(
        "n_caseload_cap",
        "Most participants per peer worker at once (n)",
        "caseload cap",
        "int",
        step=1,
    ),
    _lever(
        "p_remote_contact",
        "Community meetings held by phone or video (share, 0-1)",
        "remote meetings",
        "float",
        step=0.05,
    ),
    # Support length applies in service mode too: the model and the people
    # (simulation.model, simulation.population) read it whatever the mode.
    _lever(
        "trial.dur_support_after_discharge_weeks",
        "Peer support after discharge (weeks)",
        "support",
        "int",
        step=1,
        note="applies in trial and service mode alike; must be at least the weekly phase",
    ),
    _lever(
        "trial.dur_weekly_phase_weeks",
        "Weekly meetings for the first weeks after discharge, then fortnightly (weeks)",
        "weekly phase",
        "int",
        step=1,
        note="at most the support after discharge",
    ),
)
LEVER_OF: Mapping[str, Lever] = MappingProxyType(
    {**{lever.field: lever for lever in LEVERS}, **{lever.name: lever for lever in LEVERS}}
)


def lever(field: str) -> Lever:
    """The lever of ``field`` (a site field, ``trial.FIELD`` or the bare trial field);
    ``PlanError`` naming the levers if there is none."""
    found = LEVER_OF.get(field)
    if found is None:
        raise PlanError(
            f"no planner lever {field!r}; the levers are "
            + ", ".join(lever.field for lever in LEVERS)
        )
    return found


# --- what-ifs -------------------------------------------------------------------------


def _frozen(changes: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType(
        {str(site): MappingProxyType(dict(values)) for site, values in changes.items() if values}
    )


@functools.lru_cache(maxsize=16)
def _load_base(path: str | None, stamp: tuple[int, int]) -> Scenario:
    del stamp  # part of the cache key only: a changed file is read again
    try:
        return load_scenario(None if path is None else Path(path))
    except ScenarioError as e:
        raise PlanError(_one_line(str(e))) from None


def _one_line(text: str) -> str:
    """A message of several lines (a header, then one problem a line) on one line."""
    first, *rest = text.splitlines() or [""]
    return first + (": " + "; ".join(line.strip() for line in rest) if rest else "")


def base_scenario(path: Path | None) -> Scenario:
    """The scenario of file ``path`` (``None``: the ENRICH trial), read once while
    the file is unchanged."""
    file = default_scenario_path() if path is None else Path(path)
    try:
        info = file.stat()
    except OSError as e:
        raise PlanError(f"{file}: cannot read the scenario file ({e.strerror})") from None
    return _load_base(
        None if path is None else str(Path(path).resolve()), (info.st_mtime_ns, info.st_size)
    )


def _reconfigured(
    path: str | None, values: tuple[tuple[str, Any], ...], description: str, configuration: str
) -> Scenario:
    """The what-if made under another site configuration: the base file under it, then
    the changes (as the loader applies a what-if file's)."""
    base = load_scenario(None if path is None else Path(path), configuration=configuration)
    changed = base.with_values(dict(values)) if values else base
    return changed.model_copy(update={"description": description})


@dataclass(frozen=True)
class WhatIf:
    """A base scenario file and the planner's changes to it.

    ``base``: the scenario file (``None``: the ENRICH trial file shipped with
    peersim). ``sites``: per-site changes ``{site: {field: value}}`` of the site
    levers; ``trial``: trial-level changes ``{field: value}`` (the trial group's
    fields, without ``trial.``). Both are kept read-only. Make changes with
    ``set_lever`` and ``scale_lever``; a value equal to the base's is no change.
    """

    base: Path | None = None
    sites: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    trial: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", None if self.base is None else Path(self.base))
        object.__setattr__(self, "sites", _frozen(self.sites))
        object.__setattr__(self, "trial", MappingProxyType(dict(self.trial)))

    def __hash__(self) -> int:
        return hash(
            (
                self.base,
                tuple((s, tuple(v.items())) for s, v in self.sites.items()),
                tuple(self.trial.items()),
                self.description,
            )
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WhatIf):
            return NotImplemented
        return (self.base, self._plain(), self.description) == (
            other.base,
            other._plain(),
            other.description,
        )

    def _plain(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        return {s: dict(v) for s, v in self.sites.items()}, dict(self.trial)

    @property
    def base_path(self) -> Path:
        """The base file's absolute path (the ENRICH file for ``None``)."""
        return (default_scenario_path() if self.base is None else self.base).resolve()

    def base_scenario(self) -> Scenario:
        """The base scenario, as its file gives it."""
        return base_scenario(self.base)

    def values(self) -> dict[str, Any]:
        """The changes as parameter paths (``sites.F.supervisor_h_per_week``,
        ``trial.dur_support_after_discharge_weeks``) and values."""
        out = {f"{TRIAL_PREFIX}{name}": value for name, value in self.trial.items()}
        for site, changes in self.sites.items():
            out.update({site_path(site, name): value for name, value in changes.items()})
        return out

    def scenario(self) -> Scenario:
        """The what-if as a validated ``Scenario`` (its description this one's, or
        ``changes_text``); ``PlanError`` in one line for a site the base lacks or a
        value its lever does not allow. It can be made under the base's other site
        configurations (``Scenario.configured``), as a posterior ensemble needs."""
        base = self.base_scenario()
        unknown = [s for s in self.sites if s not in base.sites]
        if unknown:
            raise PlanError(
                f"site {unknown[0]!r}: not a site of {base.name!r}; its sites are "
                + ", ".join(base.sites)
            )
        values = self.values()
        try:
            scenario = base.with_values(values) if values else base
        except ValidationError as e:
            raise PlanError(_validation_line(e, self, base)) from None
        except PathError as e:
            raise PlanError(str(e)) from None
        scenario = scenario.model_copy(update={"description": self.describe()})
        if base.site_configurations is not None:
            path = None if self.base is None else str(self.base_path)
            scenario._reconfigure = functools.partial(  # as the loader does for a file
                _reconfigured, path, tuple(values.items()), self.describe()
            )
        return scenario

    def describe(self) -> str:
        """The description, or else what changes (``changes_text``)."""
        return self.description or f"What if: {changes_text(self)}?"

    def to_toml(self) -> str:
        """The what-if as a scenario file: ``extends`` the base's absolute path (so
        ``peersim validate`` accepts it in any folder), a header saying what changes,
        ``description``, ``[trial]`` and one ``[sites.NAME]`` table per changed site.

        A ``[sites.NAME]`` value in a what-if is applied after the parent's site
        configuration (``scenarios.loader``), so ``host`` set here holds."""
        self.scenario()  # only a valid what-if is written
        base = self.base_scenario()
        lines = [
            f"# What-if made with the peersim app's planner, from {base.name!r}.",
            f"# Base file: {self.base_path}",
            "#",
            "# What changes (base -> what-if):",
            *(f"#   {line}" for line in _change_lines(self, base)),
            "#",
            "# Every value set here is the planner's choice [M].",
            f"extends = {_toml_value(str(self.base_path))}",
            f"description = {_toml_value(self.describe())}",
        ]
        if self.trial:
            lines += ["", "[trial]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in self.trial.items()]
        for site, changes in self.sites.items():
            lines += ["", f"[sites.{_toml_key(site)}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in changes.items()]
        return "\n".join(lines) + "\n"


def _validation_line(error: ValidationError, whatif: WhatIf, base: Scenario) -> str:
    """The first problem of a ValidationError as site, lever, value and what is allowed."""
    problems = []
    for err in error.errors():
        loc = tuple(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if loc[:1] == ("sites",) and len(loc) >= 3:
            site, name = loc[1], loc[2]
            value = whatif.sites.get(site, {}).get(name, err.get("input"))
            problems.append(f"site {site}: {_lever_words(name)} = {value!r}: {msg}{_allowed(name)}")
        elif loc[:1] == ("trial",):
            names = [loc[1]] if len(loc) > 1 else list(whatif.trial)
            changed = ", ".join(
                f"{_lever_words(n)} = {whatif.trial.get(n, getattr(base.trial, n, None))!r}"
                for n in names
            )
            problems.append(
                f"trial: {changed}: {msg}{_allowed(names[0]) if len(names) == 1 else ''}"
            )
        else:
            problems.append(f"{'.'.join(loc) or 'scenario'}: {msg}")
    return "; ".join(problems)


def _lever_words(name: str) -> str:
    found = LEVER_OF.get(name)
    return f"{found.short} ({found.field})" if found is not None else name


def _allowed(name: str) -> str:
    found = LEVER_OF.get(name)
    if found is None:
        return ""
    if found.kind == "select":
        return "; allowed: " + " or ".join(v for v, _ in found.options)
    if found.kind == "bool":
        return "; allowed: true or false"
    if found.min is None and found.max is None:
        return ""
    number = "a whole number" if found.kind == "int" else "a number"
    lo = "" if found.min is None else f" from {found.text(found.min)}"
    hi = "" if found.max is None else f" to {found.text(found.max)}"
    return f"; allowed: {number}{lo}{hi}"


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise PlanError(f"value {value!r}: not a finite number")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string (JSON's escapes are TOML's)
    raise PlanError(f"value {value!r}: a what-if value is a number, true/false or a name")


# --- changing levers ------------------------------------------------------------------


def _site_names(whatif: WhatIf, sites: str | Iterable[str] | None, lever: Lever) -> list[str]:
    """The sites a change applies to: names, or one selector (``sites.*``,
    ``sites[host=not_for_profit]``) read against the what-if as it stands."""
    if lever.scope == "trial":
        if sites not in (None, (), []) and sites != "trial":
            raise PlanError(
                f"{lever.short} ({lever.field}) is one value for the whole "
                f"{whatif.base_scenario().mode}, not per site; give no sites"
            )
        return []
    if sites is None:
        raise PlanError(f"{lever.short} ({lever.field}): say which sites")
    base = whatif.base_scenario()
    if isinstance(sites, str):
        if sites.startswith("sites") and sites[5:6] in (".", "["):
            # The sites as the what-if leaves them (unvalidated: it may be half made).
            current = {
                name: {**site.model_dump(), **whatif.sites.get(name, {})}
                for name, site in base.sites.items()
            }
            try:
                names = list(parse_selector(sites).select(current))
            except PathError as e:
                raise PlanError(str(e)) from None
            if not names:
                raise PlanError(f"{sites} selects no site of {base.name!r}")
            return names
        sites = [sites]
    names = list(dict.fromkeys(sites))
    unknown = [s for s in names if s not in base.sites]
    if unknown:
        raise PlanError(
            f"site {unknown[0]!r}: not a site of {base.name!r}; its sites are "
            + ", ".join(base.sites)
        )
    if not names:
        raise PlanError(f"{lever.short} ({lever.field}): no sites given")
    return names


def _targets(names: list[str]) -> list[str | None]:
    """The sites to change, or ``[None]``: the trial-level value."""
    return list(names) if names else [None]


def _base_value(base: Scenario, site: str | None, lever: Lever) -> Any:
    if site is None:
        return getattr(base.trial, lever.name)
    return getattr(base.sites[site], lever.name)


def _with_change(whatif: WhatIf, site: str | None, lever: Lever, value: Any) -> WhatIf:
    """``whatif`` with one change; a value equal to the base's removes the change."""
    base = whatif.base_scenario()
    same = _same(_base_value(base, site, lever), value)
    if site is None:
        trial = dict(whatif.trial)
        trial.pop(lever.name, None)
        if not same:
            trial[lever.name] = value
        return WhatIf(whatif.base, whatif.sites, trial, whatif.description)
    sites = {s: dict(v) for s, v in whatif.sites.items()}
    changes = sites.setdefault(site, {})
    changes.pop(lever.name, None)
    if not same:
        changes[lever.name] = value
    return WhatIf(whatif.base, sites, whatif.trial, whatif.description)


def _same(a: Any, b: Any) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _coerced(found: Lever, names: list[str], value: Any) -> Any:
    """``value`` as the lever's kind takes it (a control may give 20 for 20.0 or "4"
    for 4); ``PlanError`` if it cannot be."""
    where = f"site {', '.join(names)}" if names else found.scope
    problem = f"{where}: {found.short} ({found.field}) = {value!r}"
    if found.kind == "bool":
        if not isinstance(value, bool):
            raise PlanError(f"{problem}: not true or false{_allowed(found.name)}")
        return value
    if found.kind == "select":
        return str(value)
    if isinstance(value, bool):
        raise PlanError(f"{problem}: not a number{_allowed(found.name)}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PlanError(f"{problem}: not a number{_allowed(found.name)}") from None
    if not math.isfinite(number):
        raise PlanError(f"{problem}: not a finite number{_allowed(found.name)}")
    if found.kind == "int":
        if not number.is_integer():
            raise PlanError(f"{problem}: not a whole number{_allowed(found.name)}")
        return int(number)
    return number


def set_lever(whatif: WhatIf, sites: str | Iterable[str] | None, field: str, value: Any) -> WhatIf:
    """``whatif`` with lever ``field`` set to ``value`` at ``sites`` (site names or
    one selector such as ``"sites[host=not_for_profit]"``, read against the what-if
    as it stands; ``None`` for a trial lever). Checked when the scenario is made
    (``WhatIf.scenario``), so that changes that only fit together can be made one
    by one."""
    found = lever(field)
    names = _site_names(whatif, sites, found)
    value = _coerced(found, names, value)
    out = whatif
    for site in _targets(names):
        out = _with_change(out, site, found, value)
    return out


def scale_lever(
    whatif: WhatIf, sites: str | Iterable[str] | None, field: str, factor: float
) -> WhatIf:
    """``whatif`` with a numeric lever multiplied by ``factor`` at each of ``sites``
    (x2 coordinator hours: ``factor=2``), from the what-if's current value there,
    else the base's. A whole-number lever is rounded to the nearest whole number."""
    found = lever(field)
    if found.kind not in ("int", "float"):
        raise PlanError(f"{found.short} ({found.field}) is not a number, so it cannot be scaled")
    if not math.isfinite(factor):
        raise PlanError(f"{found.short} ({found.field}): factor {factor!r} is not a number")
    names = _site_names(whatif, sites, found)
    base = whatif.base_scenario()
    out = whatif
    for site in _targets(names):
        changes = out.trial if site is None else out.sites.get(site, {})
        current = changes.get(found.name, _base_value(base, site, found))
        scaled = float(current) * factor
        rounded = math.floor(scaled + 0.5) if found.kind == "int" else scaled
        out = _with_change(out, site, found, _coerced(found, [site] if site else [], rounded))
    return out


def _change_lines(whatif: WhatIf, base: Scenario) -> list[str]:
    """One line per change, sites with the same change together:
    ``F, G: coordinator hours 10 -> 20``."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for site, changes in whatif.sites.items():
        for name, value in changes.items():
            found = LEVER_OF.get(name)
            old = _base_value(base, site, found) if found else getattr(base.sites[site], name)
            words = found.short if found else name
            text = (found.text(old), found.text(value)) if found else (str(old), str(value))
            groups.setdefault((words, *text), []).append(site)
    lines = [f"{', '.join(s)}: {words} {old} -> {new}" for (words, old, new), s in groups.items()]
    for name, value in whatif.trial.items():
        found = LEVER_OF.get(name)
        old = getattr(base.trial, name)
        words = found.short if found else name
        unit = f" {_unit(found.label)}" if found else ""
        old_text, new_text = (found.text(old), found.text(value)) if found else (old, value)
        lines.append(f"{words} {old_text} -> {new_text}{unit}")
    return lines


def _unit(label: str) -> str:
    match = re.search(r"\(([^()]*)\)$", label)
    return match.group(1) if match else ""


def changes_text(whatif: WhatIf) -> str:
    """What the what-if changes, short, for legends:
    ``"F: coordinator hours 10 -> 20; support 16 -> 26 weeks"`` (``"no change"``)."""
    lines = _change_lines(whatif, whatif.base_scenario())
    return "; ".join(lines) if lines else "no change"


# --- comparing ------------------------------------------------------------------------


class _ProgressExecutor(InlineExecutor):
    """Runs each task in this process, then reports the replicates done so far."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future = super().submit(fn, *args, **kwargs)
        if self.progress is not None and future.exception() is None:
            output = future.result()
            self.done += len(getattr(output, "ok", ())) + len(getattr(output, "failed", ()))
            self.progress(min(self.done, self.total), self.total)
        return future


P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class PlannerComparison:
    """A baseline and a what-if compared by common random numbers.

    ``comparison``: the table ``peersim compare`` writes as ``comparison.csv``
    (outcomes, then resources in hours and events, then money with a costs file);
    ``sites``: the outcomes per site for display; ``site_weeks``: both scenarios'
    weekly site measures (trajectories); ``money``: the resources and money as
    ``analysis.comparison_run.money_comparison`` gives them.
    """

    base: str  # labels, as in the comparison's ``whatif`` column and figure names
    whatif: str
    n_replicates: int
    seed: int
    comparison: pd.DataFrame
    outcomes: pd.DataFrame  # the outcome rows of ``comparison`` (what the forest plot draws)
    replicates: pd.DataFrame  # every outcome of every replicate, long (analysis.compare)
    sites: pd.DataFrame
    site_weeks: pd.DataFrame
    money: Money

    def csv_bytes(self) -> bytes:
        """``comparison.csv``, byte for byte as ``peersim compare`` writes it."""
        return self.comparison.to_csv(index=False).encode("utf-8")

    def brief_markdown(self) -> str:
        """``brief.md``: the question and the answer in people, hours and money."""
        return self.money.brief

    def figure_pngs(self) -> dict[str, bytes]:
        """The comparison's figures as PNG bytes, by file name (``forest_<what-if>.png``,
        ``trajectories_<what-if>.png``, with costs ``ce_plane.png`` and
        ``acceptability.png``), drawn as ``peersim compare`` draws them."""
        figures = comparison_figures(
            self.outcomes,
            self.money,
            self.site_weeks,
            self.base,
            [self.whatif],
            n=self.n_replicates,
        )
        out = {}
        for name, figure in figures.items():
            buffer = io.BytesIO()
            figure.savefig(
                buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL}
            )
            out[name] = buffer.getvalue()
        return out


SITE_ROW_COLUMNS: tuple[str, ...] = (
    "outcome",
    "label",
    "site",
    "base_mean",
    "whatif_mean",
    "diff_mean",
    "diff_lo",
    "diff_hi",
    "n",
)


def _site_rows(comparison: pd.DataFrame, base: Scenario) -> pd.DataFrame:
    """Per-site rows of every outcome and resource both scenarios have at the site."""
    sites = paired_sites(comparison)
    rows = comparison[comparison["scope"].astype(str).isin(sites)].copy()
    rows["site"] = rows["scope"].astype(str)
    rows["label"] = [
        RESOURCE_LABELS.get(str(o), heading(str(o), base)) for o in rows["outcome"].astype(str)
    ]
    return rows[list(SITE_ROW_COLUMNS)].reset_index(drop=True)


def compare_whatif(
    base: Scenario,
    whatif: Scenario,
    *,
    n_replicates: int,
    seed: int = DEFAULT_SEED,
    costs: Costs | None = None,
    discount_rate: float = DEFAULT_DISCOUNT_RATE,
    posterior_dir: Path | None = None,
    progress: Progress | None = None,
    labels: tuple[str, str] = ("base", "whatif"),
) -> PlannerComparison:
    """``whatif`` against ``base``, ``n_replicates`` paired replicates from master
    seed ``seed``, as ``peersim compare BASE WHATIF`` runs them (with ``--costs``,
    ``--discount-rate``, ``--posterior``): the same jobs, tables and statistics, so
    the comparison CSV is the one the command line writes for scenario files
    labelled ``labels``. The runs go through ``simulation.runner.run_jobs`` in
    this process, into a temporary folder removed afterwards; ``progress(done,
    total)`` is called as replicates finish (a batch of up to 10 at a time).

    Time, measured on this project's 2-core machine (load about 1), the ENRICH
    trial against coordinator hours x2 at its not-for-profit sites, 20 replicates,
    median of 3 runs: 0.66 s (the same with ``costs_example.toml``), 1.9 s with
    ``posterior_dir=docs/calibration`` (each draw's scenario is made afresh and
    fewer replicates share one, so fewer run side by side). Drawing the figures
    (``figure_pngs``) takes another 1.3-1.5 s.
    """
    base_label, whatif_label = labels
    if base_label == whatif_label:
        raise PlanError(f"the two labels must differ (both {base_label!r})")
    if n_replicates < MIN_REPLICATES:
        raise PlanError(
            f"replicates: {n_replicates}: at least {MIN_REPLICATES} for a paired interval"
        )
    if base.mode != whatif.mode:
        raise PlanError(
            f"the what-if is mode {whatif.mode!r} but the baseline {base.mode!r}: compare "
            "scenarios of one mode"
        )
    if not (math.isfinite(discount_rate) and 0 <= discount_rate < 1):
        raise PlanError(f"discount rate {discount_rate!r}: allowed: a number, 0 to below 1")
    scenarios = {base_label: base, whatif_label: whatif}
    if posterior_dir is not None:
        jobs = _posterior_jobs(Path(posterior_dir), scenarios, seed, n_replicates)
    else:
        jobs = comparison_jobs(scenarios, seed, n_replicates)
    total = len(jobs)
    if progress is not None:
        progress(0, total)
    with tempfile.TemporaryDirectory(prefix="peersim-planner-") as tmp:
        sweep = run_jobs(
            jobs,
            Path(tmp) / "sweep",
            tables=COMPARE_TABLES,
            executor=_ProgressExecutor(progress, total),
            progress=False,
        )
        if not sweep.complete:
            failures = sweep.failures
            first = failures.iloc[0] if len(failures) else None
            detail = (
                f": first {first['scenario']} replicate {first['replicate']}: "
                f"{first['error_type']}: {first['error_message']}"
                if first is not None
                else ""
            )
            raise PlanError(f"{len(failures)} of {total} runs failed{detail}")
        tables = {name: sweep.table(name) for name in COMPARE_TABLES}
    replicates, comparison = outcome_comparison(scenarios, base_label, [whatif_label], tables)
    money = money_comparison(
        scenarios,
        base_label,
        [whatif_label],
        tables["resources"],
        n=n_replicates,
        seed=seed,
        costs=costs,
        rate=discount_rate,
        posterior=posterior_dir is not None,
    )
    full = pd.concat([comparison, money.comparison], ignore_index=True)
    return PlannerComparison(
        base_label,
        whatif_label,
        n_replicates,
        seed,
        full,
        comparison,
        replicates,
        _site_rows(full, base),
        tables["site_weeks"],
        money,
    )


def _posterior_jobs(
    directory: Path, scenarios: Mapping[str, Scenario], seed: int, n: int
) -> LazyJobs:
    """The posterior ensemble's jobs (replicate i of both scenarios draws the same
    particle), after the checks ``peersim compare --posterior`` makes."""
    from calibration.posterior import PosteriorError, load_posterior

    (base_label, base), (_, whatif) = scenarios.items()
    try:
        posterior = load_posterior(directory)
        for scenario in scenarios.values():
            posterior.median_scenario(scenario)
            posterior.check_configurations(scenario)
    except (PosteriorError, KeyError, ValidationError, ValueError) as e:
        raise PlanError(f"posterior {directory}: {str(e).splitlines()[0]}") from None
    overridden = posterior.overridden(base, whatif)
    if overridden:
        raise PlanError(
            f"the what-if changes calibrated parameter(s) {', '.join(overridden)}, which the "
            f"posterior {directory} would overwrite; compare without the posterior or leave "
            "them as in the baseline"
        )
    del base_label
    return LazyJobs.concat(
        [
            posterior.jobs(scenario, seed, n, tags={"scenario": label}, key_prefix=f"{label}/")
            for label, scenario in scenarios.items()
        ]
    )


# --- choices for the page -------------------------------------------------------------


def scenario_choices() -> dict[str, Path | None]:
    """Scenario files to start from, label -> file: the ENRICH trial first (``None``,
    the default), then the library (``scenarios.loader.library``) by name."""
    default = default_scenario_path().resolve()
    choices: dict[str, Path | None] = {"ENRICH trial (enrich_trial)": None}
    for name, path in library().items():
        if path.resolve() != default:
            choices[name] = path
    return choices


def costs_choices() -> dict[str, Path]:
    """The unit costs files shipped beside the scenarios (``costs_*.toml``), by name."""
    folder = default_scenario_path().parent
    return {p.stem: p for p in sorted(folder.glob(f"{COSTS_FILE_PREFIX}*.toml"))}


def _project_roots() -> list[Path]:
    here = Path(__file__).resolve().parents[2]  # the checkout this module sits in
    return list(dict.fromkeys([here, Path.cwd().resolve()]))


def posterior_choices(roots: Iterable[Path] | None = None) -> dict[str, Path]:
    """Calibrations to draw from: folders holding a ``posterior.parquet`` under
    ``docs/`` and ``results/`` of ``roots`` (default: the project's folder and the
    current one), label (the folder, relative to its root) -> folder."""
    choices: dict[str, Path] = {}
    for root in roots if roots is not None else _project_roots():
        for folder in POSTERIOR_FOLDERS:
            top = root / folder
            if not top.is_dir():
                continue
            for file in sorted(top.rglob(POSTERIOR_FILE)):
                directory = file.parent.resolve()
                if directory not in choices.values():
                    choices[str(file.parent.relative_to(root))] = directory
    return choices


__all__ += ["MIN_REPLICATES", "OVERALL", "base_scenario", "lever"]
