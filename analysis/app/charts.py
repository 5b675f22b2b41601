"""The teaching app's charts, as ECharts options: plain dicts the page hands to
``solara.FigureEcharts``.

A step changes only the data of a chart; the browser redraws it from the new
option in milliseconds, where re-rendering a matplotlib figure took over a second
(issue 14). ECharts 5.4 comes with ``solara-assets``, so the charts need no
internet connection. Nothing here imports solara: tests read the options directly.

Every chart keeps its axes fixed for a run (shares on 0-1, weeks over the whole of
delivery), so that lines of earlier runs, drawn faded and dashed, can be compared
with the current one by eye.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex

from simulation.population import FIDELITY_DOMAINS
from simulation.results import RECORDS

Option = dict[str, Any]

# Okabe & Ito (2008), distinguishable with the common colour-vision deficiencies;
# their yellow is left out, too pale on white. More sites than colours: the
# colours repeat with a dashed line.
SITE_COLOURS: tuple[str, ...] = (
    "#000000",
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
)
# Poor to good (0-1) for fidelity and ward relationship: cividis, readable with
# colour-vision deficiencies and in grey.
QUALITY_CMAP = colormaps["cividis"]
CLIENT_COLOURS = {
    "on the ward": "#0072B2",
    "in the community": "#009E73",
    "not yet met": "#BBBBBB",
}
FONT = 12


@dataclass(frozen=True)
class Panel:
    """One small chart of a trajectory figure: a measure per site and week."""

    key: str
    title: str
    unit: str  # the y axis: what the number is, with its unit
    top: float | None  # y maximum; None: from the data, then never lowered


# What the sites' participants and wards do, and the four fidelity domains apart.
DELIVERY_PANELS: tuple[Panel, ...] = (
    Panel("engaged_share", "Engaged with their peer worker", "share of those randomised", 1.0),
    Panel("contacts_mean", "Peer support sessions", "sessions per participant", None),
    Panel("ward_relationship", "Ward staff relationship", "index 0-1", 1.0),
)
FIDELITY_PANELS: tuple[Panel, ...] = tuple(
    Panel(f"fid_{d}", d.capitalize(), "fidelity 0-1", 1.0) for d in FIDELITY_DOMAINS
)


@dataclass(frozen=True)
class Run:
    """The trajectories of one run, averaged over its trials: what a chart draws.

    ``measures`` maps a ``RECORDS`` name to an array (week so far, site)."""

    label: str
    site_names: tuple[str, ...]
    site_labels: tuple[str, ...]
    measures: Mapping[str, np.ndarray]

    @property
    def weeks(self) -> int:
        first = next(iter(self.measures.values()))
        return int(first.shape[0])


def run_of(
    records: np.ndarray, site_names: Sequence[str], site_labels: Sequence[str], label: str
) -> Run:
    """A ``Run`` from records of (week, measure, site), measures as in ``RECORDS``."""
    return Run(
        label,
        tuple(site_names),
        tuple(site_labels),
        {name: records[:, k, :].copy() for k, name in enumerate(RECORDS)},
    )


def site_colour(k: int) -> str:
    return SITE_COLOURS[k % len(SITE_COLOURS)]


def _line_type(k: int) -> str:
    return "solid" if k < len(SITE_COLOURS) else "dashed"


def trajectory_option(
    panels: Sequence[Panel],
    current: Run,
    *,
    n_weeks: int,
    recruitment_weeks: int,
    earlier: Sequence[Run] = (),
    focus: Sequence[str] = (),
    tops: Mapping[str, float] | None = None,
) -> Option:
    """Small multiples side by side, one per panel: each site's line for the weeks
    so far, earlier runs faded and dashed behind it, the focus sites bold (the
    others faint), and a dotted line where recruitment ends."""
    n = len(panels)
    gap = 4.0  # percent of the width between panels
    width = (100 - 7 - gap * (n - 1) - 2) / n
    grids, xs, ys, titles, series = [], [], [], [], []
    for i, panel in enumerate(panels):
        left = 7 + i * (width + gap)
        grids.append({"left": f"{left:.1f}%", "width": f"{width:.1f}%", "top": 46, "bottom": 92})
        titles.append(
            {
                "text": panel.title,
                "left": f"{left + width / 2:.1f}%",
                "textAlign": "center",
                "top": 4,
                "textStyle": {"fontSize": FONT + 1, "fontWeight": "bold"},
            }
        )
        xs.append(
            {
                "gridIndex": i,
                "type": "value",
                "min": 0,
                "max": n_weeks,
                "interval": 12,
                "name": "week",
                "nameLocation": "middle",
                "nameGap": 24,
                "axisLabel": {"fontSize": FONT - 1},
            }
        )
        top = panel.top if panel.top is not None else (tops or {}).get(panel.key, 1.0)
        ys.append(
            {
                "gridIndex": i,
                "type": "value",
                "min": 0,
                "max": top,
                "name": panel.unit,
                "nameLocation": "middle",
                "nameGap": 32,
                "nameTextStyle": {"fontSize": FONT - 1},
                "axisLabel": {"fontSize": FONT - 1},
                "splitLine": {"lineStyle": {"color": "#eeeeee"}},
            }
        )
        for run in (*earlier, current):
            is_current = run is current
            for k, site in enumerate(run.site_names):
                if focus and site not in focus and not is_current:
                    continue  # earlier runs of unfocused sites would only clutter
                values = run.measures[panel.key][:, k]
                bold = not focus or site in focus
                width_px = (2.6 if focus else 1.8) if bold else 1.0
                opacity = (1.0 if bold else 0.3) if is_current else 0.35
                entry: Option = {
                    "type": "line",
                    "name": run.site_labels[k] if is_current else f"earlier: {run.label}",
                    "xAxisIndex": i,
                    "yAxisIndex": i,
                    "showSymbol": False,
                    "animation": False,
                    "silent": not is_current,
                    "color": site_colour(k),
                    "lineStyle": {
                        "width": width_px if is_current else 1.4,
                        "opacity": opacity,
                        "type": _line_type(k) if is_current else "dashed",
                    },
                    "data": [[w + 1, round(float(v), 4)] for w, v in enumerate(values)],
                    "z": 3 if is_current else 2,
                }
                series.append(entry)
        series.append(_recruitment_marker(i, recruitment_weeks))
    legend_names = list(current.site_labels) + [f"earlier: {run.label}" for run in earlier]
    option: Option = {
        "animation": False,
        "title": titles,
        "grid": grids,
        "xAxis": xs,
        "yAxis": ys,
        "series": series,
        "legend": {
            "data": legend_names,
            "bottom": 0,
            "itemWidth": 18,
            "textStyle": {"fontSize": FONT},
        },
    }
    if current.weeks == 0 and not earlier:
        option["graphic"] = [
            {
                "type": "text",
                "left": "center",
                "top": "middle",
                "style": {"text": "Press Step or Play", "fontSize": FONT + 4, "fill": "#777"},
            }
        ]
    return option


def _recruitment_marker(i: int, week: int) -> Option:
    """An empty series in panel ``i`` carrying a dotted line where recruitment ends."""
    return {
        "type": "line",
        "name": "recruitment ends",
        "xAxisIndex": i,
        "yAxisIndex": i,
        "data": [],
        "silent": True,
        "markLine": {
            "symbol": "none",
            "silent": True,
            "animation": False,
            "lineStyle": {"type": "dotted", "color": "#555555", "width": 1.2},
            "label": {"formatter": "recruitment ends", "fontSize": FONT - 2, "color": "#555"},
            "data": [{"xAxis": week}],
        },
    }


def quality_colour(value: float) -> str:
    """Poor (dark blue) to good (yellow), for values on 0-1."""
    return str(to_hex(QUALITY_CMAP(float(np.clip(value, 0, 1)))))


@dataclass(frozen=True)
class DifferenceRow:
    """A what-if's difference from the baseline at one site, with its interval."""

    site: str
    mean: float
    lo: float
    hi: float


def difference_option(rows: Sequence[DifferenceRow], *, title: str, unit: str) -> Option:
    """Per-site differences (what-if minus baseline) with their intervals, the
    whole trial first, and a line at no difference."""
    names = [r.site for r in rows][::-1]  # first row at the top
    bars: list[Any] = []
    for r in rows[::-1]:
        bars += [[r.lo, r.site], [r.hi, r.site], "-"]
    extent = max([abs(v) for r in rows for v in (r.lo, r.hi, r.mean)] + [1e-9]) * 1.15
    return {
        "animation": False,
        "title": {"text": title, "left": "center", "textStyle": {"fontSize": FONT + 1}},
        "grid": {"left": 150, "right": 30, "top": 40, "bottom": 60},
        "xAxis": {
            "type": "value",
            "min": round(-extent, 6),
            "max": round(extent, 6),
            "name": unit,
            "nameLocation": "middle",
            "nameGap": 28,
            "axisLabel": {"fontSize": FONT - 1},
        },
        "yAxis": {"type": "category", "data": names, "axisLabel": {"fontSize": FONT}},
        "legend": {"bottom": 0, "data": ["mean difference", "interval"]},
        "series": [
            {
                "type": "line",
                "name": "interval",
                "data": bars,
                "connectNulls": False,
                "showSymbol": False,
                "color": "#0072B2",
                "lineStyle": {"width": 3},
                "markLine": {
                    "symbol": "none",
                    "silent": True,
                    "lineStyle": {"color": "#555555", "type": "solid"},
                    "label": {"formatter": "no difference", "fontSize": FONT - 2},
                    "data": [{"xAxis": 0}],
                },
            },
            {
                "type": "scatter",
                "name": "mean difference",
                "data": [[round(r.mean, 6), r.site] for r in rows[::-1]],
                "color": "#D55E00",
                "symbolSize": 11,
            },
        ],
    }


def network_option(model: Any, site_labels: Mapping[str, str]) -> Option:
    """Who is in contact with whom at each site of the first trial, now.

    Each site top to bottom: the ward team, the coordinator(s), the peer workers
    and, under each peer worker, the participants on their caseload. Lines join
    the ward team and the coordinators to the peer workers they work with, and
    each peer worker to their clients. Ward team and peer workers are coloured by
    ward relationship and fidelity (dark poor, yellow good); clients by where they
    are. ``model`` is the ``PeerSupportModel`` (its agents), ``site_labels`` the
    label to show for each site name.
    """
    su, week = model.su, model.week
    cap = max(s.n_caseload_cap for s in model.params.sites.values())
    dy = min(0.35, 3.5 / cap)  # client rows fit in the same height whatever the cap
    points: dict[str, list[Option]] = {k: [] for k in ("ward", "coordinator", "peer worker")}
    clients: dict[str, list[Option]] = {status: [] for status in CLIENT_COLOURS}
    lines: list[Option] = []
    labels: list[Option] = []
    pw_site = model.pw.site
    coord_site = model.coordinators.site
    x0 = 0.0
    for k, name in enumerate(model.site_names):  # trial 1: internal sites 0..n_sites-1
        pws = np.flatnonzero(pw_site == k)
        n_sup = int(np.count_nonzero(coord_site == k))
        width = max(len(pws), 2)
        centre = x0 + (width - 1) / 2
        ward_xy = [centre, 3.0]
        relationship = float(model.ward_relationship[k])
        points["ward"].append(_point(ward_xy, quality_colour(relationship)))
        sup_xy = [[centre + (j - (n_sup - 1) / 2) * 0.8, 2.0] for j in range(n_sup)]
        points["coordinator"] += [_point(xy, "#CC79A7") for xy in sup_xy]
        first_x = x0 + (width - len(pws)) / 2
        for i, pw in enumerate(pws):
            pw_xy = [first_x + i, 1.0]
            fidelity = float(np.mean(model.pw.fidelity[pw]))
            points["peer worker"].append(_point(pw_xy, quality_colour(fidelity)))
            lines.append(_edge(ward_xy, pw_xy, "#cccccc"))
            lines += [_edge(xy, pw_xy, "#CC79A7") for xy in sup_xy]
            for j, c in enumerate(model.active_caseload_members(int(pw))):
                met = bool(su.met[c])
                on_ward = bool(su.week_recruited[c] <= week < su.week_discharged[c])
                status = (
                    "not yet met" if not met else ("on the ward" if on_ward else "in the community")
                )
                xy = [pw_xy[0], round(0.35 - j * dy, 3)]
                clients[status].append({"value": xy})
                lines.append(_edge(pw_xy, xy, CLIENT_COLOURS[status]))
        labels.append({"value": [centre, 3.45], "name": site_labels.get(name, name)})
        x0 += width + 1.2
    series: list[Option] = [
        {
            "type": "lines",
            "coordinateSystem": "cartesian2d",
            "silent": True,
            "animation": False,
            "data": lines,
            "lineStyle": {"width": 0.8},
            "z": 1,
        },
        {
            "type": "scatter",
            "name": "site",
            "data": labels,
            "symbolSize": 0,
            "silent": True,
            "label": {
                "show": True,
                "formatter": "{b}",
                "fontSize": FONT - 1,
                "lineHeight": FONT + 3,
                "position": "top",
            },
        },
    ]
    shapes = {"ward": ("rect", 18), "coordinator": ("diamond", 15), "peer worker": ("circle", 14)}
    names = {"ward": "ward team", "coordinator": "coordinator", "peer worker": "peer worker"}
    for kind, data in points.items():
        symbol, size = shapes[kind]
        series.append(
            {
                "type": "scatter",
                "name": names[kind],
                "symbol": symbol,
                "symbolSize": size,
                "data": data,
                "itemStyle": {"borderColor": "#000", "borderWidth": 1, "color": "#888888"},
                "z": 3,
                "animation": False,
            }
        )
    for status, data in clients.items():
        series.append(
            {
                "type": "scatter",
                "name": f"client {status}",
                "symbolSize": 6,
                "data": data,
                "itemStyle": {"color": CLIENT_COLOURS[status]},
                "z": 3,
                "animation": False,
            }
        )
    return {
        "animation": False,
        "grid": {"left": 10, "right": 10, "top": 10, "bottom": 50},
        "xAxis": {"type": "value", "min": -0.8, "max": max(x0 - 0.9, 1), "show": False},
        "yAxis": {
            "type": "value",
            "min": round(0.35 - cap * dy - 0.3, 3),
            "max": 4.0,
            "show": False,
        },
        "legend": {
            "bottom": 0,
            "data": [*names.values(), *(f"client {s}" for s in CLIENT_COLOURS)],
            "textStyle": {"fontSize": FONT - 1},
        },
        "series": series,
    }


def _point(xy: list[float], colour: str) -> Option:
    return {"value": [round(xy[0], 3), xy[1]], "itemStyle": {"color": colour}}


def _edge(a: list[float], b: list[float], colour: str) -> Option:
    return {
        "coords": [[round(a[0], 3), a[1]], [round(b[0], 3), b[1]]],
        "lineStyle": {"color": colour},
    }
