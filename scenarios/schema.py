"""JSON Schema of scenario files, so that editors can complete and check them.

``file_schema()`` describes a scenario file as written: a complete file, or a
what-if with ``extends``, ``sites_remove`` and ``[[sites_where]]``. One schema
serves both: a file with ``extends`` or ``sites_where`` may give sites partly
(the rest comes from the parent or the conditions), a file with neither must give
every site in full. ``resolved_schema()`` describes a scenario after loading, as
``peersim run`` embeds it in ``manifest.json``.

Descriptions carry each parameter's meaning, unit and evidence grade. A few
rules across keys cannot be said in JSON Schema (shares summing to at most 1, the
weekly phase within the support period, anything about a parent's contents):
``peersim validate`` checks those.
"""

from __future__ import annotations

import copy
from typing import Any

from scenarios.claims import CLAIMABLE, Claim
from simulation.params import CONFIGURED_SITE_KEYS as CONFIGURED
from simulation.params import Scenario

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_GRADES = {
    "T": "a published ENRICH trial paper",
    "W": "a trial-site web page or lay summary",
    "S": "the seed case study",
    "M": "a modelling assumption",
}
_SITE_NAMES = {"minLength": 1, "pattern": "^[^/]+$"}


def resolved_schema() -> dict[str, Any]:
    """The JSON Schema of a complete, resolved scenario (what a manifest embeds)."""
    schema = Scenario.model_json_schema()
    for definition in schema["$defs"].values():
        for prop in definition.get("properties", {}).values():
            _describe_unit_and_grade(prop)
    schema["properties"]["sites"]["propertyNames"] = dict(_SITE_NAMES)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "peersim scenario (resolved)",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def file_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario TOML file as written, what-ifs included."""
    schema = resolved_schema()
    defs = schema["$defs"]
    partial = copy.deepcopy(defs["Site"])
    partial.pop("required", None)
    partial["title"] = "Site (partial)"
    partial["description"] = (
        "Some keys of a site: the rest come from the parent file (extends) or from "
        "[[sites_where]] entries. " + partial.get("description", "")
    )
    defs["SitePartial"] = partial
    condition = copy.deepcopy(partial)
    condition["title"] = "Sites where"
    condition["description"] = (
        "Change every site that meets all the conditions: each key other than 'set' "
        "is a site key whose value must be equal (no conditions: every site). "
        "Applied in file order, after the sites are merged; matching no site is an error."
    )
    condition["properties"]["set"] = {
        "$ref": "#/$defs/SitePartial",
        "description": "the site keys to give every matching site, and their values",
    }
    condition["required"] = ["set"]
    defs["SitesWhere"] = condition
    props = schema["properties"]
    props["name"].pop("default", None)  # the loader's default is the file name
    props["name"]["description"] += " (default: the file name; not inherited)"
    props["description"]["description"] += " (not inherited)"
    props["sites"] = {
        "type": "object",
        "description": (
            "sites by name; in a file that extends another, [sites.NAME] changes only the "
            "keys given, and a new name adds a site that must then be complete"
        ),
        "additionalProperties": {"$ref": "#/$defs/SitePartial"},
        "propertyNames": dict(_SITE_NAMES),
    }
    props["extends"] = {
        "type": "string",
        "minLength": 1,
        "description": (
            "the parent scenario file, relative to this file: this file then gives only "
            "what differs from it"
        ),
    }
    props["sites_remove"] = {
        "type": "array",
        "items": {"type": "string", **_SITE_NAMES},
        "uniqueItems": True,
        "description": "names of the parent's sites to drop before this file's sites apply",
    }
    props["sites_where"] = {
        "type": "array",
        "items": {"$ref": "#/$defs/SitesWhere"},
        "description": "changes to every site meeting conditions, e.g. every rural site",
    }
    props["claim"] = _claim_schema()
    schema["required"] = [r for r in schema.get("required", []) if r != "sites"]
    schema["dependentRequired"] = {"sites_remove": ["extends"]}
    # Without a parent or conditions to fill them in, every site must be complete.
    schema["if"] = {"anyOf": [{"required": ["extends"]}, {"required": ["sites_where"]}]}
    # ... except the keys a site configuration sets, where the file has one.
    configured = copy.deepcopy(defs["Site"])
    configured["required"] = [k for k in configured.get("required", []) if k not in CONFIGURED]
    configured["title"] = "Site (configured)"
    configured["description"] = (
        "A site of a file with [site_configurations]: host, geography and "
        "dur_travel_min come from the configuration selected. " + configured.get("description", "")
    )
    defs["SiteConfigured"] = configured

    def complete_sites(site: str) -> dict[str, Any]:
        return {
            "required": ["sites"],
            "properties": {"sites": {"minProperties": 1, "additionalProperties": {"$ref": site}}},
        }

    schema["else"] = {
        "if": {"required": ["site_configurations"]},
        "then": complete_sites("#/$defs/SiteConfigured"),
        "else": complete_sites("#/$defs/Site"),
    }
    schema["title"] = "peersim scenario file"
    schema["description"] = (
        "A peersim scenario: global parameters (each defaults to the ENRICH trial's value) "
        "and the sites. A what-if names its parent with 'extends' and gives only what "
        "changes. Checked fully by 'peersim validate FILE'."
    )
    return schema


def _claim_schema() -> dict[str, Any]:
    """A what-if's [claim] (scenarios.claims): its outcome one of the claimable names,
    its sites one selector or an array of them."""
    claim = Claim.model_json_schema()
    props = claim["properties"]
    props["outcome"]["enum"] = list(CLAIMABLE)
    selector = {"type": "string", "pattern": r"^sites(\.|\[)"}
    props["sites"] = {
        "description": props["sites"]["description"],
        "anyOf": [selector, {"type": "array", "items": selector, "minItems": 1}],
    }
    claim["description"] = (
        "what the what-if claims its lever does, checked by 'peersim levers' (not "
        "inherited through extends)"
    )
    claim.pop("title", None)
    return claim


def _describe_unit_and_grade(prop: dict[str, Any]) -> None:
    """Fold a parameter's unit, grade and source into its description, which is what
    editors show on hover."""
    notes = []
    unit = prop.get("unit")
    if unit and unit != "switch":
        notes.append(f"unit: {unit}")
    grade = prop.get("grade")
    if grade in _GRADES:
        notes.append(f"grade {grade}, {_GRADES[grade]}")
    if prop.get("source"):
        notes.append(f"source: {prop['source']}")
    elif "source" in prop:
        del prop["source"]
    if notes:
        prop["description"] = f"{prop.get('description', '')} [{'; '.join(notes)}]"
