"""Statistics the trial reported, computed the way the papers did."""

from __future__ import annotations

import math

import numpy as np

Z_95 = 1.959963984540054


def odds_ratio(events_a: int, n_a: int, events_b: int, n_b: int) -> tuple[float, float, float]:
    """Odds ratio of group a versus group b with a Woolf (log) 95% interval.

    A zero cell gets Haldane's 0.5 correction in every cell, so the ratio stays
    finite; an empty group gives NaNs.
    """
    if n_a <= 0 or n_b <= 0:
        return (math.nan, math.nan, math.nan)
    a, b, c, d = events_a, n_a - events_a, events_b, n_b - events_b
    cells = (float(a), float(b), float(c), float(d))
    if min(cells) == 0:
        cells = tuple(x + 0.5 for x in cells)  # type: ignore[assignment]
    a_, b_, c_, d_ = cells
    log_or = math.log(a_ * d_ / (b_ * c_))
    se = math.sqrt(1 / a_ + 1 / b_ + 1 / c_ + 1 / d_)
    return (math.exp(log_or), math.exp(log_or - Z_95 * se), math.exp(log_or + Z_95 * se))


def logistic_regression(
    x: np.ndarray, y: np.ndarray, max_iter: int = 50, tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood logistic regression by iteratively reweighted least squares.

    ``x`` is (n, k) without an intercept column; one is added. Returns the
    coefficients (intercept first) and their standard errors. Raises
    ``ValueError`` if the fit does not converge (separation, for example).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    design = np.column_stack([np.ones(len(x)), x])
    beta = np.zeros(design.shape[1])
    for _ in range(max_iter):
        eta = design @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        w = mu * (1.0 - mu)
        hessian = design.T @ (design * w[:, None])
        try:
            step = np.linalg.solve(hessian, design.T @ (y - mu))
        except np.linalg.LinAlgError as err:  # weights collapse under separation
            raise ValueError(
                "logistic regression did not converge (separation or too few events?)"
            ) from err
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    else:
        raise ValueError("logistic regression did not converge (separation or too few events?)")
    eta = design @ beta
    mu = 1.0 / (1.0 + np.exp(-eta))
    hessian = design.T @ (design * (mu * (1.0 - mu))[:, None])
    se = np.sqrt(np.diag(np.linalg.inv(hessian)))
    return beta, se
