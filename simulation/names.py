"""The closest valid names to a misspelt one, for every message that offers them.

It lives in ``simulation`` so that every layer can use it (``simulation.paths``
for parameter paths, ``scenarios.inputs`` for input files); ``scenarios.inputs``
re-exports both functions.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's similarity ratio a name needs to be offered at all, and how far below
# the best one it may fall and still be offered too.
MIN_RATIO = 0.6
RATIO_BELOW_BEST = 0.1


def closest_names(key: str, names: Iterable[str]) -> list[str]:
    """The valid names nearest ``key`` (at most three), best first; may be empty."""
    close = difflib.get_close_matches(key, list(names), n=3, cutoff=MIN_RATIO)
    if not close:
        return []
    # Offer only the near-best: "engagment" should get "engagement", not also "name".
    best = difflib.SequenceMatcher(None, key, close[0]).ratio()
    return [
        c for c in close if difflib.SequenceMatcher(None, key, c).ratio() >= best - RATIO_BELOW_BEST
    ]


def suggest_among(key: str, names: Iterable[str], listing: str = "valid keys here") -> str:
    """``did you mean X?`` for a near miss, else ``LISTING: a, b, c``."""
    choices = list(names)
    if not choices:
        return "no keys are allowed here"
    close = closest_names(key, choices)
    if close:
        return "did you mean " + " or ".join(close) + "?"
    return f"{listing}: " + ", ".join(choices)
