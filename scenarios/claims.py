"""A what-if's claim: which outcome its lever should move, which way, where and how.

A what-if file (``scenarios/whatif_*.toml``) ends with a ``[claim]`` table that
says, in a form a machine can check, what its header says in words::

    [claim]
    outcome = "engaged_share"          # an outcome of the registry (simulation.outcomes)
    direction = "higher"               # or "lower": the change the policy question asks about
    sites = "sites[geography=rural]"   # optional: where (a site selector, or an array of
                                       #   them: the sites any selects); omitted: the whole trial
    mechanism = "M5: remote meetings save travel -> ..."   # the path the lever acts through

The claim belongs to the file it is written in: it is not inherited through
``extends`` (a what-if extending another makes its own claim, or none). The
loader checks it with the rest of the file and removes it before the scenario is
validated, so it never reaches the model; ``scenarios.loader.load_claim(path)``
reads it back. ``analysis.levers`` (``peersim levers``) runs every what-if
against its parent with common random numbers and says whether the claimed
outcome moves beyond replicate noise in the claimed direction.

Sites are chosen in the *baseline* (the parent scenario), so that a what-if that
changes the very attribute its selector names (NHS hosting for
``sites[host=not_for_profit]``) is judged at the sites it set out to change. A
per-site claim compares the unweighted mean over the selected sites of each
site's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scenarios.inputs import Problem, show, suggest_among, toml_type
from scenarios.messages import describe
from simulation.outcomes import ALIASES, OUTCOMES, Outcome
from simulation.params import Scenario
from simulation.paths import PathError, SiteSelector, parse_selector

CLAIM_KEY = "claim"
Direction = Literal["higher", "lower"]

# The outcomes a claim may name: those with a computation from one replicate (the
# calibration statistics that need settings have none).
CLAIMABLE: tuple[str, ...] = tuple(o.name for o in OUTCOMES.values() if o.value is not None)
CLAIMABLE_PER_SITE: tuple[str, ...] = tuple(name for name in CLAIMABLE if OUTCOMES[name].per_site)


class Claim(BaseModel):
    """The ``[claim]`` table of a what-if file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: str = Field(
        description="the outcome the lever should move: a name of the outcome registry"
    )
    direction: Direction = Field(
        description="which way the policy question expects the outcome to move"
    )
    sites: tuple[str, ...] = Field(
        default=(),
        min_length=1,
        description="where: a site selector (sites.NAME, sites.* or sites[FIELD=VALUE, ...]) "
        "or an array of them, chosen in the baseline; omitted: the whole trial",
    )
    mechanism: str = Field(
        min_length=1, description="the mechanism path the lever acts through, in words"
    )

    @field_validator("outcome")
    @classmethod
    def _known_outcome(cls, name: str) -> str:
        name = ALIASES.get(name, name)
        if name not in CLAIMABLE:
            what = (
                "an outcome that needs settings, which a claim cannot give"
                if name in OUTCOMES
                else "not an outcome of the registry"
            )
            raise ValueError(f"{what}; {suggest_among(name, CLAIMABLE, 'claimable outcomes')}")
        return name

    @field_validator("sites", mode="before")
    @classmethod
    def _selectors(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            for text in value:
                if isinstance(text, str):
                    try:
                        parse_selector(text)
                    except PathError as e:
                        raise ValueError(str(e).removeprefix(f"{text!r}: ")) from None
            return tuple(value)
        return value

    @property
    def selectors(self) -> tuple[SiteSelector, ...]:
        return tuple(parse_selector(text) for text in self.sites)

    @property
    def target(self) -> Outcome:
        """The claimed outcome, from the registry."""
        return OUTCOMES[self.outcome]

    @property
    def where(self) -> str:
        """The claim's scope in words: the selectors, or ``whole trial``."""
        return ", ".join(self.sites) if self.sites else "whole trial"

    def select(self, baseline: Scenario) -> tuple[str, ...]:
        """The names of the sites the claim is about, in the baseline's site order
        (the sites any selector selects); ``()`` for the whole trial."""
        chosen: set[str] = set()
        for selector in self.selectors:
            chosen.update(selector.select(baseline.sites))
        return tuple(name for name in baseline.sites if name in chosen)


def parse_claim(path: Path, raw: Any) -> tuple[Claim | None, list[Problem]]:
    """The claim of the file ``path`` from its ``[claim]`` value ``raw``, or the
    problems with it (each naming the file, the key, the value and what is allowed)."""
    if not isinstance(raw, Mapping):
        return None, [
            Problem(
                path,
                CLAIM_KEY,
                f"wrong type ({toml_type(raw)})",
                raw,
                "a table begun with [claim], with outcome, direction, mechanism and "
                "optionally sites",
            )
        ]
    try:
        claim = Claim.model_validate(dict(raw), strict=True)
    except ValidationError as e:
        return None, [_problem(path, err) for err in e.errors(include_url=False)]
    extra = _per_site_problem(path, claim)
    return (None, extra) if extra else (claim, [])


def _problem(path: Path, err: Any) -> Problem:
    """One validation error of the claim as a ``Problem`` of ``path``."""
    loc = err["loc"]
    if err["type"] == "string_type" and len(loc) == 2 and loc[0] == "sites":
        return Problem(
            path,
            f"{CLAIM_KEY}.sites",
            f"wrong type in the array ({toml_type(err['input'])})",
            err["input"],
            "site selectors as strings, e.g. sites[geography=rural]",
        )
    if err["type"] == "too_short" and loc == ("sites",):
        return Problem(
            path,
            f"{CLAIM_KEY}.sites",
            "an empty array selects no site",
            [],
            "at least one site selector; leave sites out for a claim about the whole trial",
        )
    if err["type"] == "tuple_type" and loc == ("sites",):
        return Problem(
            path,
            f"{CLAIM_KEY}.sites",
            f"wrong type ({toml_type(err['input'])})",
            err["input"],
            "a site selector (sites.NAME, sites.* or sites[FIELD=VALUE, ...]) or an array of them",
        )
    line = describe(err, Claim, prefix=f"{CLAIM_KEY}.")
    return Problem(path, "", line)


def _per_site_problem(path: Path, claim: Claim) -> list[Problem]:
    if not claim.sites or claim.target.per_site:
        return []
    return [
        Problem(
            path,
            f"{CLAIM_KEY}.sites",
            f"outcome {claim.outcome!r} is an outcome of the whole trial only, so it cannot "
            "be restricted to sites",
            list(claim.sites),
            f"leave out sites, or claim an outcome per site: {', '.join(CLAIMABLE_PER_SITE)}",
        )
    ]


def selects_nothing(path: Path, claim: Claim, baseline: Scenario) -> Problem | None:
    """The problem of a claim whose sites select none of the baseline's sites
    (``None`` if it selects some, or is about the whole trial)."""
    if not claim.sites:
        return None
    try:
        if claim.select(baseline):
            return None
        what = "selects none of the baseline's sites"
    except PathError as e:
        what = str(e)
    return Problem(
        path,
        f"{CLAIM_KEY}.sites",
        what,
        list(claim.sites),
        f"selectors of the sites of {baseline.name!r}: {', '.join(baseline.sites)}",
    )


__all__ = [
    "CLAIMABLE",
    "CLAIMABLE_PER_SITE",
    "CLAIM_KEY",
    "Claim",
    "Direction",
    "parse_claim",
    "selects_nothing",
    "show",
]
