"""A calibration's posterior: saved, loaded, and turned into scenarios.

A posterior folder (what ``peersim calibrate`` writes, e.g. ``docs/calibration``)
holds ``posterior.parquet``: one row per particle of the last ABC-SMC
generation, a column per free parameter (its path, as in the priors file, on the
natural scale) and ``weight`` (summing to 1), plus ``distance``.

Two ways to use it:

- ``Posterior.median_scenario(base)``: the base scenario with every free parameter
  at its weighted posterior median (the calibrated scenario file). Marginal
  medians: a point for runs that need one, not the most probable joint value.
- ``Posterior.scenario_for_replicate(base, i, seed)``: replicate ``i`` draws one
  particle (by weight) and runs with its parameters, so a set of replicates
  carries the calibration's uncertainty into what-ifs (posterior-ensemble mode).
  The draw uses its own random stream derived from the replicate's seed (not one
  the model uses), so it depends only on the seed and the posterior, and replicate
  ``i`` of a baseline and of a what-if draw the same particle: comparisons stay
  paired. ``Posterior.jobs`` makes the runner's jobs of such a run.

A what-if that changes a calibrated parameter would be overridden by the
posterior's values; ``Posterior.overridden(reference, scenario)`` names such
parameters so that a command can refuse or warn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from calibration.priors import SITE_CONFIGURATION, apply_parameters, get_parameter
from simulation import Scenario, replicate_seed
from simulation.rng import Streams

if TYPE_CHECKING:
    from simulation.runner import LazyJobs, TagValue

POSTERIOR_FILE = "posterior.parquet"
MANIFEST_FILE = "manifest.json"
WEIGHT, DISTANCE = "weight", "distance"
# The stream a replicate's posterior draw comes from (no model stream has this name).
DRAW_STREAM = "calibration/posterior-draw"
# Calibrated values are written with this many significant digits (far finer than any
# posterior's spread), so the calibrated scenario file reproduces exactly.
SIGNIFICANT_DIGITS = 4


class PosteriorError(Exception):
    """A posterior folder that cannot be read."""


@dataclass(frozen=True)
class Posterior:
    """Weighted posterior particles of a set of free parameters."""

    samples: pd.DataFrame
    parameters: tuple[str, ...]
    source: Path | None = None

    def __post_init__(self) -> None:
        missing = [c for c in (*self.parameters, WEIGHT) if c not in self.samples.columns]
        if missing:
            raise PosteriorError(f"posterior lacks columns {missing}")
        if not len(self.samples):
            raise PosteriorError("posterior has no particles")
        w = self.samples[WEIGHT].to_numpy(float)
        if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
            raise PosteriorError("posterior weights must be finite, >= 0, and not all 0")

    @property
    def weights(self) -> np.ndarray:
        w = self.samples[WEIGHT].to_numpy(float)
        return w / w.sum()

    @property
    def n_particles(self) -> int:
        return len(self.samples)

    def values(self, index: int) -> dict[str, float]:
        """Parameter values of particle ``index``."""
        row = self.samples.iloc[index]
        return {p: float(row[p]) for p in self.parameters}

    def quantile(self, q: float) -> dict[str, float]:
        """Weighted marginal quantile of every parameter."""
        return {
            p: weighted_quantile(self.samples[p].to_numpy(float), self.weights, q)
            for p in self.parameters
        }

    def median_values(self, selected: int | None = None) -> dict[str, float]:
        """Weighted marginal medians, to ``SIGNIFICANT_DIGITS`` significant digits; for
        the site configuration (a choice, sampled as an index) the most probable,
        unless it beats option ``selected`` (the base's) by less than two sampling
        errors, when ``selected`` stays (see ``favoured_configuration``)."""
        out = {p: round_significant(v) for p, v in self.quantile(0.5).items()}
        if SITE_CONFIGURATION in out:
            out[SITE_CONFIGURATION] = float(self.favoured_configuration(selected)) + 0.5
        return out

    def favoured_configuration(self, selected: int | None = None) -> int:
        """The index of the most probable site configuration; ``selected`` instead if
        the most probable's share exceeds its share by less than two standard errors
        (shares from weighted particles, with the effective sample size
        1 / sum(w^2)): a near-uniform posterior does not move the choice."""
        shares = self.configuration_shares()
        best = int(shares.index[int(np.argmax(shares.to_numpy()))])
        if selected is None or best == selected:
            return best
        ess = 1.0 / float(np.sum(self.weights**2))
        p_best, p_sel = float(shares[best]), float(shares.get(selected, 0.0))
        # SE of a difference of two shares of one multinomial sample.
        se = math.sqrt(max(p_best + p_sel - (p_best - p_sel) ** 2, 0.0) / ess)
        return best if p_best - p_sel > 2 * se else selected

    def check_configurations(self, base: Scenario) -> bool:
        """Whether the site configurations the posterior draws apply to ``base``
        (False: it offers none, stating its sites itself, and takes the other values
        only); ``ValueError`` if they apply but ``base`` cannot be made under every
        one drawn (not from its file, or the file changed), so that a
        posterior-ensemble run fails before it starts, not midway."""
        shares = self.configuration_shares()
        offered = base.site_configurations
        if shares.empty or offered is None:
            return False
        for k in shares.index[shares.to_numpy() > 0]:
            base.configured(offered.names[min(int(k), len(offered.names) - 1)])
        return True

    def configuration_shares(self) -> pd.Series:
        """Posterior probability of each site configuration index (``floor`` of the
        sampled index), by index; empty if the site configuration was not free."""
        if SITE_CONFIGURATION not in self.parameters:
            return pd.Series(dtype=float)
        index = np.floor(self.samples[SITE_CONFIGURATION].to_numpy(float)).astype(int)
        return pd.Series(self.weights).groupby(index).sum()

    def median_scenario(self, base: Scenario) -> Scenario:
        """``base`` with every free parameter at its posterior median (the site
        configuration: see ``median_values``)."""
        selected = (
            get_parameter(base, SITE_CONFIGURATION)
            if SITE_CONFIGURATION in self.parameters and base.site_configurations is not None
            else None
        )
        return apply_parameters(
            base, self.median_values(None if selected is None else int(selected))
        )

    def draw(self, seed: int | np.random.SeedSequence) -> int:
        """Index of the particle a replicate with ``seed`` uses (weighted draw)."""
        rng = Streams(seed).get(DRAW_STREAM)
        return int(rng.choice(self.n_particles, p=self.weights))

    def scenario_for_replicate(
        self, base: Scenario, replicate: int, seed: int | np.random.SeedSequence
    ) -> Scenario:
        """``base`` with the parameters of the particle replicate ``replicate`` draws.

        ``seed`` is the run's master seed (an int: the replicate's seed is then
        ``replicate_seed(seed, replicate)``, as ``peersim run`` uses) or the
        replicate's own ``SeedSequence``.
        """
        own = replicate_seed(seed, replicate) if isinstance(seed, int) else seed
        return apply_parameters(base, self.values(self.draw(own)))

    def jobs(
        self,
        base: Scenario,
        master_seed: int,
        n_replicates: int,
        *,
        tags: Mapping[str, TagValue] | None = None,
        key_prefix: str = "",
    ) -> LazyJobs:
        """Like ``simulation.runner.replicate_jobs``, each replicate with its drawn
        parameters (tagged ``particle``), made when asked for. Replicates that draw
        the same particle share a scenario, so the runner still simulates them side
        by side."""
        from simulation.runner import Job, LazyJobs

        base_tags = dict(tags or {})
        scenarios: dict[int, Scenario] = {}  # at most one per particle

        def key(i: int) -> str:
            return f"{key_prefix}replicate-{i}"

        def make(i: int) -> Job:
            seed = replicate_seed(master_seed, i)
            k = self.draw(seed)
            if k not in scenarios:
                scenarios[k] = apply_parameters(base, self.values(k))
            return Job(key(i), scenarios[k], seed, {**base_tags, "replicate": i, "particle": k})

        return LazyJobs(n_replicates, make, key)

    def overridden(self, reference: Scenario, scenario: Scenario) -> list[str]:
        """Calibrated parameters whose value in ``scenario`` differs from
        ``reference``: a what-if changing them would be undone by the posterior."""
        return [
            p
            for p in self.parameters
            if not _same(_parameter(reference, p), _parameter(scenario, p))
        ]

    def save(self, directory: Path) -> Path:
        path = directory / POSTERIOR_FILE
        self.samples.to_parquet(path, index=False)
        return path


def load_posterior(directory: str | Path) -> Posterior:
    """The posterior in ``directory`` (a ``peersim calibrate`` output folder).

    The free parameters are the columns other than ``weight`` and ``distance``;
    raises ``PosteriorError`` if the folder or file is missing or malformed.
    """
    folder = Path(directory)
    path = folder / POSTERIOR_FILE
    if not folder.is_dir():
        raise PosteriorError(f"{folder}: no such folder")
    if not path.is_file():
        raise PosteriorError(f"{folder}: no {POSTERIOR_FILE} (not a calibration output folder?)")
    try:
        samples = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise PosteriorError(f"{path}: cannot read: {e}") from None
    parameters = tuple(c for c in samples.columns if c not in (WEIGHT, DISTANCE))
    for p in parameters:
        if not pd.api.types.is_float_dtype(samples[p]):
            raise PosteriorError(f"{path}: column {p!r} is not numeric")
    return Posterior(samples, parameters, folder)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST_FILE
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:
        raise PosteriorError(f"{path}: cannot read: {e}") from None


def _parameter(scenario: Scenario, path: str) -> float:
    """A calibrated parameter's value in ``scenario``; NaN for the site configuration
    of a scenario that offers none (which the posterior's draw does not touch)."""
    if path == SITE_CONFIGURATION and scenario.site_configurations is None:
        return math.nan
    return get_parameter(scenario, path)


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of a weighted sample (inverse of the weighted CDF, with
    linear interpolation between the midpoints of the sorted points' weights)."""
    order = np.argsort(values)
    v, w = np.asarray(values, float)[order], np.asarray(weights, float)[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return float(np.interp(q, cdf, v))


def round_significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
