"""The distance between a particle's simulated summary and the observed targets.

For one particle (a parameter set, simulated R times), with fitted quantitative
targets i of weight w_i (W their sum) and patterns j::

    d = sqrt( sum_i w_i * z_i**2 / W )      if every pattern j is shown,
    d = infinity                            otherwise (the particle is rejected)

**Quantitative part.** ``z_i = (mean_i - observed_i) / s_i`` where ``mean_i`` is
the mean over the R replicates (of the log, for odds ratios) and ``s_i`` is the
sampling error of that comparison: ``s_i**2 = se_i**2 + sd_i**2 / R``, with
``se_i`` the observation's reported SE (from ``se``, ``ci`` or ``n``), or, where
the report gives none, the model's own spread between simulated trials ``sd_i``
(``s_i**2 = sd_i**2 * (1 + 1/R)``), since that is the sampling error a trial of
the simulated size has. ``sd_i`` is the median over the last generation's
particles of each particle's between-replicate SD, refitted every generation:
pyabc's ``AdaptivePNormDistance`` (Prangle 2017) with scales that are sampling
errors rather than the spread of the population, so targets on different scales
(shares, log odds ratios, correlations) count in the same currency, "sampling
errors away". If ``sd_i`` is unavailable (R = 1), the reported SE stands in for
it, or without one the median absolute deviation of the particles' means
(pyabc's default scale).

**Patterns.** A sourced pattern is a constraint, not a preference: a particle
whose replicates show a fitted pattern (of weight above 0) in fewer than
``PATTERN_MET_SHARE`` of them (more often than not) is rejected whatever its
other targets, so no accepted particle contradicts a sourced fact in most of
its trials. A soft penalty would let a particle trade a broken pattern for a
close quantitative fit.

**When to stop.** At the true parameters each ``z_i`` is roughly standard
normal, so the quantitative part is below the 95% quantile of
``sqrt(sum_i w_i * Z_i**2 / W)`` in 95% of simulations (``acceptance_threshold``).
The epsilon schedule (pyabc's median epsilon) is floored at that value and the
run stops once it is reached: the posterior is then the prior restricted to
parameter sets whose simulated trials are consistent with every target within
sampling error (ABC with a uniform kernel is exact for that error model,
Wilkinson 2013). Shrinking epsilon further would treat the one observed trial as
if it had no sampling error, and give overconfident posteriors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyabc
from pyabc.population import Sample
from pyabc.sumstat import Sumstat

from calibration.targets import SD_SUFFIX, TargetSet

# A pattern counts as shown when it holds in at least this share of replicates.
PATTERN_MET_SHARE = 0.5
ACCEPTANCE_LEVEL = 0.95
_THRESHOLD_DRAWS = 200_000
_THRESHOLD_SEED = 20241


class _KeysSumstat(Sumstat):
    """The named entries of a summary dict, as an array (pyabc's sumstat interface)."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__()
        self.keys = list(keys)

    def __call__(self, data: Any) -> np.ndarray:
        return np.array([data[k] for k in self.keys], dtype=float)

    def get_ids(self) -> list[str]:
        return list(self.keys)


class TargetDistance(pyabc.AdaptivePNormDistance):
    """The module docstring's distance, as a pyabc ``Distance``."""

    def __init__(self, targets: TargetSet, replicates: int) -> None:
        quantitative = [t for t in targets.fitted if not t.is_pattern]
        total = sum(t.weight for t in quantitative)
        self.quantitative = [t.name for t in quantitative]
        self.patterns = {t.name: t.weight for t in targets.fitted if t.is_pattern}
        self.observed_se = {
            t.name: t.observed.se if t.observed is not None else None for t in quantitative
        }
        self.replicates = replicates
        self.scales: dict[int, dict[str, float]] = {}
        super().__init__(
            p=2,
            fixed_weights={t.name: math.sqrt(t.weight / total) for t in quantitative} or None,
            sumstat=_KeysSumstat(self.quantitative),
        )

    def fit_scales(self, t: int, sample: Sample) -> None:
        particles = (
            sample.all_particles if self.all_particles_for_scale else sample.accepted_particles
        )
        scales = np.array([self._scale(name, particles) for name in self.quantitative])
        ok = np.isfinite(scales) & (scales > 0)
        weights = np.zeros(len(scales))
        weights[ok] = 1 / scales[ok]
        self.scale_weights[t] = weights
        self.scales[t] = dict(zip(self.quantitative, scales.tolist(), strict=True))

    def _scale(self, name: str, particles: list[Any]) -> float:
        sds = np.array([p.sum_stat.get(name + SD_SUFFIX, math.nan) for p in particles], float)
        sds = sds[np.isfinite(sds)]
        sd = float(np.median(sds)) if len(sds) else math.nan
        se = self.observed_se[name]
        if not sd > 0:  # R = 1, or no spread between replicates
            if se is not None:
                sd = se  # the reported SE stands in for one simulated trial's spread
            else:  # pyabc's default: the population's spread of the means
                means = np.array([p.sum_stat.get(name, math.nan) for p in particles], float)
                means = means[np.isfinite(means)]
                return (
                    float(np.median(np.abs(means - np.median(means)))) if len(means) else math.nan
                )
        if se is not None:
            return math.sqrt(se**2 + sd**2 / self.replicates)
        return sd * math.sqrt(1 + 1 / self.replicates)

    def __call__(self, x: dict, x_0: dict, t: int | None = None, par: dict | None = None) -> float:
        d = float(super().__call__(x, x_0, t, par)) if self.quantitative else 0.0
        if not math.isfinite(d):
            return math.inf
        return d + sum(pattern_penalty(x.get(name, math.nan)) for name in self.patterns)

    def components(self, x: dict, t: int) -> dict[str, float]:
        """Each fitted target's part: ``z`` for a quantitative target (signed), 0 or
        infinity for a pattern (shown or not; for the fit report)."""
        weights = self.scale_weights.get(t)
        out: dict[str, float] = {}
        if weights is not None:
            for name, w in zip(self.quantitative, weights, strict=True):
                out[name] = float((x[name] - self.x_0[name]) * w) if w > 0 else math.nan
        for name in self.patterns:
            out[name] = pattern_penalty(x.get(name, math.nan))
        return out

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            name="TargetDistance",
            replicates=self.replicates,
            quantitative=self.quantitative,
            patterns=self.patterns,
            pattern_met_share=PATTERN_MET_SHARE,
        )
        return config


def pattern_penalty(share: float) -> float:
    """0 if the pattern holds in at least ``PATTERN_MET_SHARE`` of the replicates,
    else infinity: the particle is rejected (NaN, not computable: rejected too)."""
    if math.isfinite(share) and share >= PATTERN_MET_SHARE:
        return 0.0
    return math.inf


def acceptance_threshold(targets: TargetSet, level: float = ACCEPTANCE_LEVEL) -> float:
    """The ``level`` quantile of ``sqrt(sum_i w_i Z_i**2 / W)`` over the fitted
    quantitative targets, Z_i independent standard normal (0 if there are none).
    Computed by simulation from a fixed seed, so it is the same every time."""
    weights = np.array([t.weight for t in targets.fitted if not t.is_pattern])
    if not len(weights):
        return 0.0
    rng = np.random.default_rng(_THRESHOLD_SEED)
    z = rng.standard_normal((_THRESHOLD_DRAWS, len(weights)))
    d = np.sqrt((z**2) @ (weights / weights.sum()))
    return float(np.quantile(d, level))


class FlooredMedianEpsilon(pyabc.MedianEpsilon):
    """pyabc's median epsilon, never below ``floor``."""

    def __init__(self, floor: float) -> None:
        super().__init__()
        self.floor = floor

    def _update(self, t: int, weighted_distances: Any) -> None:
        super()._update(t, weighted_distances)
        self._look_up[t] = max(float(self._look_up[t]), self.floor)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(name="FlooredMedianEpsilon", floor=self.floor)
        return config
