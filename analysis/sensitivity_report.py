"""What ``peersim sensitivity`` writes: tables, figures and a short Markdown report.

Figures are drawn on bare ``Figure`` objects (Agg canvas, no pyplot), as in
``analysis.figures``. Morris: one scatter of mu* against sigma per output,
parameters within replicate noise drawn hollow. Sobol: one bar chart of S1 and
ST with their bootstrap intervals per output, parameters whose indices at N and
N/2 disagree marked with an asterisk.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.sensitivity import (
    NOISE_FLOOR_SE,
    NOISE_SHARE_FLAG,
    Analysis,
    Design,
    output_description,
    output_unit,
)

DPI = 150
TOP_DRIVERS = 3
# Morris points with mu* below this share of the largest are left unlabelled.
LABEL_MIN_SHARE = 0.05
FILES: dict[str, str] = {
    "manifest.json": "how the analysis was made: spec, settings, versions, git commit",
    "report.md": "this report",
    "samples.parquet": "one row per parameter set: `sample` and the sampled values",
    "outputs.parquet": "one row per run: `sample`, `replicate` and the outputs",
    "outputs_mean.parquet": "one row per parameter set: the replicate means SALib analysed",
    "indices.csv": "the sensitivity indices, one row per output and parameter "
    "(also indices.parquet)",
    "second_order.csv": "Sobol second-order indices per parameter pair (also .parquet), "
    "if asked for",
    "noise.csv": "per output: variance of the means, replicate noise and its share",
    "figures/": "one PNG per output",
}


def write_results(directory: Path, design: Design, runs: pd.DataFrame, analysis: Analysis) -> None:
    """Write every table, figure and the report into ``directory`` (which exists)."""
    design.samples_frame().to_parquet(directory / "samples.parquet", index=False)
    runs.to_parquet(directory / "outputs.parquet", index=False)
    analysis.means.to_parquet(directory / "outputs_mean.parquet", index=False)
    analysis.indices.to_csv(directory / "indices.csv", index=False)
    analysis.indices.to_parquet(directory / "indices.parquet", index=False)
    if analysis.second_order is not None:
        analysis.second_order.to_csv(directory / "second_order.csv", index=False)
        analysis.second_order.to_parquet(directory / "second_order.parquet", index=False)
    analysis.noise.to_csv(directory / "noise.csv", index=False)
    figures = directory / "figures"
    figures.mkdir(exist_ok=True)
    for name, figure in make_figures(design, analysis).items():
        FigureCanvasAgg(figure)
        figure.savefig(figures / name, dpi=DPI)
    (directory / "report.md").write_text(format_report(design, analysis), encoding="utf-8")


def figure_name(method: str, output: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", output)
    return f"{method}_{safe}.png"


def make_figures(design: Design, analysis: Analysis) -> dict[str, Figure]:
    """One figure per output, keyed by file name."""
    draw = morris_figure if analysis.method == "morris" else sobol_figure
    return {
        figure_name(analysis.method, output): draw(design, analysis, output)
        for output in design.spec.outputs
    }


def _noise_text(analysis: Analysis, output: str) -> str:
    row = analysis.noise.set_index("output").loc[output]
    share = float(row["noise_share"])
    if row["variance"] == 0:
        return "the output does not vary: no indices"
    if not math.isfinite(share):
        return "replicate noise: not estimable"
    flag = " (high: indices partly noise)" if share > NOISE_SHARE_FLAG else ""
    return f"replicate noise {share:.1%} of variance{flag}"


def morris_figure(design: Design, analysis: Analysis, output: str) -> Figure:
    """mu* (x, with its bootstrap interval) against sigma (y) for one output.

    Points carry their rank (by mu*); the panel on the right names them, so that
    labels never hide each other. Points with mu* below ``LABEL_MIN_SHARE`` of
    the largest are left unnumbered on the plot.
    """
    rows = analysis.indices[analysis.indices["output"] == output].sort_values("rank")
    figure = Figure(figsize=(10.5, 5.5), layout="constrained")
    ax, key = figure.subplots(1, 2, width_ratios=(1.6, 1))
    mu, sigma = rows["mu_star"].to_numpy(), rows["sigma"].to_numpy()
    noise = rows["within_noise"].to_numpy(dtype=bool)
    ax.errorbar(mu, sigma, xerr=rows["mu_star_conf"].to_numpy(), fmt="none", ecolor="0.75", lw=0.8)
    ax.scatter(mu[~noise], sigma[~noise], color="tab:blue", zorder=3, label="above noise")
    ax.scatter(
        mu[noise],
        sigma[noise],
        facecolors="none",
        edgecolors="tab:blue",
        zorder=3,
        label=f"within noise (mu* < {NOISE_FLOOR_SE:g} SE)",
    )
    top_mu = float(np.nanmax(mu, initial=0.0))
    top_sigma = float(np.nanmax(sigma, initial=0.0))
    if top_mu > 0:
        reach = max(top_mu, top_sigma) * 1.1
        ax.plot([0, reach], [0, reach], ls="--", color="0.5", lw=0.8, label="sigma = mu*")
        ax.set_xlim(-0.03 * top_mu, top_mu * 1.12)
        ax.set_ylim(-0.03 * max(top_sigma, 0.1 * top_mu), max(top_sigma, 0.1 * top_mu) * 1.15)
    ranks = rows["rank"].to_numpy()
    for x, y, rank in zip(mu, sigma, ranks, strict=True):
        if top_mu > 0 and x >= LABEL_MIN_SHARE * top_mu:
            ax.annotate(str(rank), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7)
    # Elementary effects are changes of the output, so they are in its unit.
    unit = output_unit(output) or "output unit"
    ax.set_xlabel(f"mu*: mean |elementary effect| (change over the full range, {unit})")
    ax.set_ylabel(f"sigma: spread of the elementary effects ({unit})")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    key.axis("off")
    lines = [
        f"{rank:>2}. {name}  ({m:.3g}{', noise' if n else ''})"
        for rank, name, m, n in zip(ranks, rows["parameter"], mu, noise, strict=True)
    ]
    key.text(
        0,
        1,
        "rank. parameter (mu*)\n" + "\n".join(lines),
        va="top",
        fontsize=7,
        family="monospace",
        transform=key.transAxes,
    )
    figure.suptitle(
        f"{output}: {output_description(output)}\n{_noise_text(analysis, output)}", fontsize=9
    )
    return figure


def sobol_figure(design: Design, analysis: Analysis, output: str) -> Figure:
    """S1 and ST with bootstrap intervals for one output, parameters by ST."""
    rows = analysis.indices[analysis.indices["output"] == output].sort_values("rank")
    n = len(rows)
    figure = Figure(figsize=(8.5, 1.4 + 0.32 * n), layout="constrained")
    ax = figure.add_subplot()
    y = np.arange(n)[::-1]
    height = 0.38
    ax.barh(
        y + height / 2,
        rows["ST"],
        height,
        xerr=rows["ST_conf"],
        color="tab:orange",
        ecolor="0.3",
        label="ST (total)",
    )
    ax.barh(
        y - height / 2,
        rows["S1"],
        height,
        xerr=rows["S1_conf"],
        color="tab:blue",
        ecolor="0.3",
        label="S1 (first order)",
    )
    labels = [
        name + ("" if ok else " *")
        for name, ok in zip(rows["parameter"], rows["converged"], strict=True)
    ]
    ax.set_yticks(y, labels, fontsize=7)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel(
        f"share of output variance ({design.settings.conf_level:.0%} bootstrap intervals)\n"
        "* not converged: S1 or ST at N and N/2 differ beyond their intervals"
    )
    ax.set_title(f"{output}: {output_description(output)}\n{_noise_text(analysis, output)}")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return figure


# --- the report ------------------------------------------------------------------------


def _driver(row: pd.Series, method: str) -> str:
    if method == "morris":
        text = f"`{row['parameter']}` (mu* {row['mu_star']:.3g})"
        return text + (", within noise" if row["within_noise"] else "")
    text = f"`{row['parameter']}` (ST {row['ST']:.2f}, S1 {row['S1']:.2f})"
    return text + ("" if row["converged"] else ", not converged")


def _share(value: float, variance: float = 1.0) -> str:
    """A noise share as text; "constant" for an output that does not vary."""
    if variance == 0:
        return "constant"
    return f"{value:.1%}" if math.isfinite(value) else "n/a"


def top_drivers(design: Design, analysis: Analysis) -> list[tuple[str, str, list[str]]]:
    """Per output: its noise share and its top parameters, described."""
    noise = analysis.noise.set_index("output")
    out = []
    for output in design.spec.outputs:
        variance = float(noise.loc[output, "variance"])
        if not math.isfinite(variance) or variance == 0:
            drivers = ["(does not vary: no driver)"]
        else:
            top = analysis.top(output, TOP_DRIVERS)
            drivers = [_driver(row, analysis.method) for _, row in top.iterrows()]
        share = _share(float(noise.loc[output, "noise_share"]), variance)
        out.append((output, share, drivers))
    return out


def format_summary(design: Design, analysis: Analysis) -> str:
    """A few lines for the terminal: the top drivers of each output."""
    lines = [f"Top drivers ({_method_text(design)}):"]
    for output, share, drivers in top_drivers(design, analysis):
        named = "; ".join(d.replace("`", "") for d in drivers)
        lines.append(f"  {output} (noise {share}): {named}")
    if analysis.warnings:
        lines.append(f"{len(analysis.warnings)} warning(s): see report.md")
    return "\n".join(lines)


def _method_text(design: Design) -> str:
    s = design.settings
    if s.method == "morris":
        return f"Morris, {s.n} trajectories, {s.levels} levels"
    return f"Sobol', N = {s.n}" + (", with second order" if s.second_order else "")


def format_report(design: Design, analysis: Analysis) -> str:
    """The Markdown report: set-up, top drivers per output, noise, warnings, files."""
    spec, s = design.spec, design.settings
    d = len(spec.parameters)
    lines = [
        f"# Sensitivity analysis: {spec.name}",
        "",
        *([spec.description, ""] if spec.description else []),
        f"{_method_text(design)}: {d} parameters of scenario `{spec.base.name}`, "
        f"{len(spec.outputs)} outputs; {design.n_samples:,} parameter sets, {s.replicates} "
        f"replicate(s) each with common random numbers ({design.n_runs:,} runs), "
        f"seed {s.seed}. Spec: `{spec.path}`.",
        "",
        "## Top drivers",
        "",
        "Ranked by "
        + (
            "mu* (mean absolute elementary effect)"
            if s.method == "morris"
            else "ST (total-order index)"
        )
        + "; noise is the share of the output's variance across parameter sets that "
        "replicate noise explains.",
        "",
        "| output | noise | " + " | ".join(f"#{i + 1}" for i in range(TOP_DRIVERS)) + " |",
        "|---|---|" + "---|" * TOP_DRIVERS,
    ]
    for output, share, drivers in top_drivers(design, analysis):
        cells = [*drivers, *[""] * (TOP_DRIVERS - len(drivers))]
        lines.append(f"| `{output}` | {share} | " + " | ".join(cells) + " |")
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in analysis.warnings] or ["None."]
    lines += ["", "## Replicate noise", ""]
    lines += [
        "| output | unit | mean | variance of means | noise variance | noise share |",
        "|---|---|---|---|---|---|",
    ]
    for row in analysis.noise.itertuples(index=False):
        flag = " (flagged)" if row.noisy else ""
        lines.append(
            f"| `{row.output}` | {output_unit(row.output)} | {row.mean:.4g} | {row.variance:.3g} | "
            f"{row.noise_variance:.3g} | {_share(row.noise_share, row.variance)}{flag} |"
        )
    lines += ["", "## How to read this", "", *_reading(design), ""]
    lines += ["## Parameters", "", "| parameter | range | meaning |", "|---|---|---|"]
    for p in spec.parameters:
        kind = "multiplier of the base value" if p.mode == "scale" else "value"
        whole = ", rounded to whole numbers" if p.integer else ""
        origin = f"; {p.origin}" if p.origin else ""
        lines.append(
            f"| `{p.path}` | {p.low:g} to {p.high:g} ({kind}{whole}{origin}) | {p.description} |"
        )
    lines += ["", "## Files", ""]
    for name, text in FILES.items():
        if name.startswith("second_order") and analysis.second_order is None:
            continue
        lines.append(f"- `{name}`: {text}")
    return "\n".join(lines) + "\n"


def _reading(design: Design) -> list[str]:
    s = design.settings
    text = []
    if s.method == "morris":
        text.append(
            "- Morris: mu* is the mean absolute change of the output when one parameter "
            "moves, scaled to its whole range, so parameters compare directly; sigma large "
            "next to mu* means the effect depends on the other parameters (interaction or "
            "non-linearity). Screening: the ranking is what counts, not the values."
        )
        text.append(
            f"- Within noise: mu* below {NOISE_FLOOR_SE:g} standard errors of its elementary "
            "effects, estimated from the replicates (common random numbers included)."
        )
    else:
        text.append(
            "- Sobol': S1 is the share of output variance a parameter explains alone, ST "
            "alone and in interactions; ST near 0 means the parameter can be fixed. "
            f"Intervals are {s.conf_level:.0%} bootstrap intervals ({s.resamples} resamples)."
        )
        text.append(
            f"- Convergence: indices are recomputed from the first half of the sample "
            f"(N = {s.n // 2}); an index whose two estimates differ by more than the sum of "
            "their intervals is marked not converged and listed under warnings."
        )
    text.append(
        "- Replicate noise: each parameter set is the mean of its replicates; replicate "
        "r has the same seed in every set (common random numbers), so a shift shared by "
        "all sets is not noise. What remains (the sample x replicate residual, divided "
        f"by the replicates) is the noise share; above {NOISE_SHARE_FLAG:.0%} an output's "
        "indices partly measure noise: add replicates before reading them."
    )
    if any(p.integer for p in design.spec.parameters):
        text.append(
            "- Integer parameters are sampled as numbers and rounded to the nearest whole "
            "number before the model runs; the indices refer to the unrounded sample."
        )
    return text
