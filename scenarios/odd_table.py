"""The ODD parameter table, generated from the parameter classes.

``docs/ODD.md`` pastes the output of ``python -m scenarios.odd_table``;
``tests/test_docs.py`` parses it back and compares it with these rows, so the
document and the code cannot drift apart.
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import BaseModel

from simulation.params import PARAMETER_GROUPS, SITE_KEY_OF_MODE, Scenario, Site

COLUMNS: tuple[str, ...] = ("name", "default", "unit", "grade", "meaning", "source")


def format_default(value: Any) -> str:
    """One canonical text form per default, so the table compares as text."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parameter_rows() -> list[dict[str, Any]]:
    """One row per global parameter, in declaration order, named ``group.field``."""
    rows: list[dict[str, Any]] = []
    for group in PARAMETER_GROUPS:
        group_cls = Scenario.model_fields[group].annotation
        if not (isinstance(group_cls, type) and issubclass(group_cls, BaseModel)):
            raise TypeError(f"scenario group {group!r} is not a parameter class")
        for name, info in group_cls.model_fields.items():
            extra = info.json_schema_extra
            if not isinstance(extra, dict):
                raise TypeError(f"{group}.{name} lacks grade/unit/source metadata")
            rows.append(
                {
                    "name": f"{group}.{name}",
                    "default": info.default,
                    "unit": str(extra["unit"]),
                    "grade": str(extra["grade"]),
                    "meaning": info.description or "",
                    "source": str(extra.get("source") or ""),
                }
            )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table() -> str:
    """The rows as a GitHub-flavoured Markdown table (no trailing newline)."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in parameter_rows():
        cells = [
            f"`{row['name']}`",
            format_default(row["default"]),
            row["unit"],
            row["grade"],
            row["meaning"],
            row["source"],
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def sites_markdown_table(scenario: Scenario) -> str:
    """The scenario's site attributes, one row per site (no trailing newline)."""
    # Each mode's own site key only (the other mode's is never set).
    other = SITE_KEY_OF_MODE["service" if scenario.mode == "trial" else "trial"]
    fields = [f for f in Site.model_fields if f != other]
    lines = ["| site | " + " | ".join(fields) + " |", "|" + "---|" * (len(fields) + 1)]
    for name, site in scenario.sites.items():
        cells = [name, *(format_default(getattr(site, f)) for f in fields)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def configurations_markdown_table(scenario: Scenario) -> str:
    """The scenario's site configurations, one row per option, the selected one
    marked (no trailing newline; empty if it offers none)."""
    offered = scenario.site_configurations
    if offered is None:
        return ""
    lines = [
        "| configuration | selected | not-for-profit hosted | rural | assumes |",
        "|---|---|---|---|---|",
    ]
    for name, c in offered.options.items():
        cells = [
            f"`{name}`",
            "yes" if name == offered.selected else "",
            ", ".join(c.not_for_profit) or "none",
            ", ".join(c.rural) or "none",
            c.description,
        ]
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the ODD tables as Markdown.")
    parser.add_argument(
        "--sites",
        action="store_true",
        help="print the ENRICH scenario's site attributes and site configurations instead",
    )
    args = parser.parse_args(argv)
    if args.sites:
        # Imported here: the model package must not depend on the scenario files.
        from scenarios.loader import load_scenario

        scenario = load_scenario(None)
        print(sites_markdown_table(scenario))
        print()
        print(configurations_markdown_table(scenario))
    else:
        print(markdown_table())


if __name__ == "__main__":
    main()
