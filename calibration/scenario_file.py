"""Write a ``Scenario`` as a complete scenario TOML file that ``peersim run`` accepts.

The file states every parameter and every site explicitly (it extends nothing),
so it stays valid and means the same whatever later happens to the scenario it
was calibrated from. Comments can be attached to any parameter by its dotted
path (``ward.p_contact_per_week``, ``sites.A.n_peer_workers``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from scenarios.loader import configured_values
from simulation.params import CONFIGURED_SITE_KEYS, PARAMETER_GROUPS, Scenario


def scenario_toml(
    scenario: Scenario,
    header: Sequence[str] = (),
    comments: Mapping[str, str] | None = None,
) -> str:
    """The TOML text of ``scenario``: ``header`` lines as ``#`` comments first, then
    ``name``, ``description``, the parameter groups and the sites."""
    notes = dict(comments or {})
    data = scenario.model_dump(mode="json")
    configurations = data.get("site_configurations")
    notice = []
    if configurations is not None and not _as_configured(configurations, data["sites"]):
        # A site's host, geography or travel differs from what the configuration
        # gives (a what-if changed it): state the sites as they are, and no
        # configuration, which would overwrite them on loading.
        configurations = None
        notice = [
            "Its sites' host, geography and travel differ from what its site configuration",
            "gives, so they are stated here and the site configurations left out.",
        ]
    lines = [f"# {line}".rstrip() for line in (*header, *notice)]
    if lines:
        lines.append("")
    lines.append(f"name = {_value(data['name'])}")
    lines.append(f"description = {_value(data['description'])}")
    service = data.get("mode") == "service"
    if service:
        lines.append('mode = "service"')
    # Each mode's own keys only: the loader refuses the other mode's.
    other = {"trial.dur_recruitment_weeks", "trial.n_block_max"} if service else {"service"}
    for group in PARAMETER_GROUPS:
        if group in other:
            continue
        lines += ["", f"[{group}]"]
        table = {k: v for k, v in data[group].items() if f"{group}.{k}" not in other}
        lines += _table(table, group, notes)
    for site, values in data["sites"].items():
        values = {k: v for k, v in values.items() if v is not None}  # the other mode's key
        if configurations is not None:  # these come from the configuration selected
            values = {k: v for k, v in values.items() if k not in CONFIGURED_SITE_KEYS}
        lines += ["", f"[sites.{_key(site)}]"]
        lines += _table(values, f"sites.{site}", notes)
    if configurations is not None:
        options = configurations.pop("options")
        lines += ["", "[site_configurations]"]
        lines += _table(configurations, "site_configurations", notes)
        for option, values in options.items():
            lines += ["", f"[site_configurations.options.{_key(option)}]"]
            lines += _table(values, f"site_configurations.options.{option}", notes)
    return "\n".join(lines) + "\n"


def _as_configured(table: dict[str, Any], sites: Mapping[str, dict[str, Any]]) -> bool:
    """Whether every site's configured keys are what the selected configuration gives."""
    option = table["options"][table["selected"]]
    return all(
        {k: values[k] for k in CONFIGURED_SITE_KEYS} == configured_values(table, option, name)
        for name, values in sites.items()
    )


def _table(values: Mapping[str, Any], prefix: str, notes: Mapping[str, str]) -> list[str]:
    out = []
    width = max((len(k) for k in values), default=0)
    for key, value in values.items():
        line = f"{_key(key).ljust(width)} = {_value(value)}"
        note = notes.get(f"{prefix}.{key}")
        out.append(f"{line}  # {note}" if note else line)
    return out


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):  # an array, e.g. fidelity.rating_weeks
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write a {type(value).__name__} to a scenario file")
