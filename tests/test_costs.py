"""Resources and money (issue 13): known answers, discounting, the costs file, the CLI.

- one extra coordinator hour a week at one site costs exactly that hour times
  the unit cost times the weeks of delivery, undiscounted and discounted (a hand
  computation over the years of delivery);
- discount factors and a priced table equal hand computations;
- a costs file with a missing unit, a negative cost, an unknown key (and the
  other mistakes the loader knows) is refused in one line naming the file, key,
  value and what is allowed, and ``peersim compare --costs`` then writes nothing;
- ``peersim compare --costs`` writes economics.csv (units in the column names),
  brief.md, the cost-effectiveness figures and the resource and money rows of
  comparison.csv; without a costs file, resources in hours and events only.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.compare import OVERALL
from analysis.economics import (
    acceptability,
    cost_outcome,
    cost_values,
    discount_factors,
    economics,
    ratio_interval,
    resource_comparison,
    resource_values,
)
from analysis.economics_report import ratio_text
from analysis.resources import WEEKS_PER_YEAR, resource_table
from scenarios import default_scenario_path
from scenarios.costs import Costs, CostsError, load_costs
from simulation import Scenario, replicate_seed, run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "scenarios" / "costs_example.toml"
ENRICH_TEXT = default_scenario_path().read_text(encoding="utf-8")
SEED = 13
N_REPLICATES = 3
COORDINATOR_HOUR = 30.0

COSTS_HEAD = 'currency = "GBP"\n'
PW = '[peer_worker_hour]\nvalue = 20.0\nunit = "GBP per hour"\nsource = "test figure"\n'
COORD = '[coordinator_hour]\nvalue = 30.0\nunit = "GBP per hour"\nsource = "test figure"\n'


def _costs(tmp_path: Path, text: str, name: str = "costs.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _coordinator_only(tmp_path: Path) -> Costs:
    """Only coordinator hours priced (peer worker hours at 0, nothing else)."""
    text = COSTS_HEAD + PW.replace("20.0", "0.0") + COORD.replace("30.0", str(COORDINATOR_HOUR))
    return load_costs(_costs(tmp_path, text))


def _resources(scenarios: dict[str, Scenario]) -> pd.DataFrame:
    """The runner's resources table for each scenario and replicate, tagged."""
    frames = [
        resource_table(run(scenario, replicate_seed(SEED, i))).assign(scenario=label, replicate=i)
        for label, scenario in scenarios.items()
        for i in range(N_REPLICATES)
    ]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def one_more_hour(scenario: Scenario) -> tuple[pd.DataFrame, int]:
    """Resources of ENRICH and of ENRICH with one more coordinator hour a week at
    site G, and the weeks of delivery."""
    g = scenario.sites["G"].supervisor_h_per_week
    more = scenario.with_values({"sites.G.supervisor_h_per_week": g + 1.0})
    resources = _resources({"base": scenario, "more": more})
    tr = scenario.trial
    weeks = (
        tr.dur_recruitment_weeks
        + tr.dur_ward_after_recruitment_max_weeks
        + tr.dur_support_after_discharge_weeks
    )
    return resources, weeks


def _overall(values: pd.DataFrame, outcome: str, label: str) -> np.ndarray:
    rows = values[
        (values["outcome"] == outcome)
        & (values["scope"] == OVERALL)
        & (values["scenario"] == label)
    ]
    return rows.sort_values("replicate")["value"].to_numpy(float)


def test_one_coordinator_hour_a_week_costs_hour_times_unit_cost_times_weeks(
    one_more_hour: tuple[pd.DataFrame, int], tmp_path: Path
) -> None:
    """Undiscounted: the what-if's extra cost is 1 h x the unit cost x the weeks, in
    every replicate, exactly (to 1e-6 of a pound), and the coordinator hours paid
    rise by exactly one an hour a week; peer worker hours, priced at 0 here, may
    move (more supervision changes the work) without changing the cost."""
    resources, weeks = one_more_hour
    costs = _coordinator_only(tmp_path)
    values = cost_values(resources, costs, rate=0.0)
    extra = _overall(values, cost_outcome("cost_net", "GBP"), "more") - _overall(
        values, cost_outcome("cost_net", "GBP"), "base"
    )
    expected = 1.0 * COORDINATOR_HOUR * weeks
    np.testing.assert_allclose(
        extra, expected, rtol=0, atol=1e-6, err_msg=f"expected GBP {expected} more per replicate"
    )
    hours = resource_values(resources)
    added = _overall(hours, "coord_hours_paid_h", "more") - _overall(
        hours, "coord_hours_paid_h", "base"
    )
    np.testing.assert_allclose(
        added, weeks, rtol=0, atol=1e-9, err_msg=f"expected {weeks} more coordinator hours"
    )


def test_discounted_extra_hour_matches_a_hand_computation(
    one_more_hour: tuple[pd.DataFrame, int], tmp_path: Path
) -> None:
    """At 3.5% a year the weeks of year 1 count in full and those of year 2 are
    divided by 1.035 (delivery is between one and two years long in ENRICH)."""
    resources, weeks = one_more_hour
    assert WEEKS_PER_YEAR < weeks <= 2 * WEEKS_PER_YEAR, (
        f"the hand computation assumes 53-104 weeks of delivery, found {weeks}"
    )
    rate = 0.035
    costs = _coordinator_only(tmp_path)
    values = cost_values(resources, costs, rate=rate)
    name = cost_outcome("cost_net", "GBP")
    extra = _overall(values, name, "more") - _overall(values, name, "base")
    by_hand = COORDINATOR_HOUR * (WEEKS_PER_YEAR + (weeks - WEEKS_PER_YEAR) / 1.035)
    np.testing.assert_allclose(
        extra, by_hand, rtol=0, atol=1e-6, err_msg=f"expected GBP {by_hand:.4f} discounted"
    )
    # The budget impact per year is not discounted: 52 weeks, then the rest.
    for year, n_weeks in ((1, WEEKS_PER_YEAR), (2, weeks - WEEKS_PER_YEAR)):
        name = cost_outcome("cost_net", "GBP", year)
        gap = _overall(values, name, "more") - _overall(values, name, "base")
        np.testing.assert_allclose(
            gap,
            COORDINATOR_HOUR * n_weeks,
            rtol=0,
            atol=1e-6,
            err_msg=f"expected year {year}'s budget impact GBP {COORDINATOR_HOUR * n_weeks}",
        )


def test_economic_summary_of_the_extra_hour(
    one_more_hour: tuple[pd.DataFrame, int], tmp_path: Path
) -> None:
    """With only coordinator hours priced the incremental cost has no spread: its
    interval is the point, it never saves money, and the cost per readmission
    avoided is the cost over the readmissions avoided (or undefined)."""
    resources, weeks = one_more_hour
    costs = _coordinator_only(tmp_path)
    values = pd.concat([resource_values(resources), cost_values(resources, costs, 0.0)])
    comparison = resource_comparison(values, "base", ["more"])
    (summary,) = economics(comparison, values, "base", ["more"], costs=costs, rate=0.0, seed=1)
    expected = COORDINATOR_HOUR * weeks
    mean, lo, hi = summary.incremental_cost
    for value in (mean, lo, hi):
        assert abs(value - expected) < 1e-6, (
            f"expected GBP {expected} more with no spread, found {mean} [{lo}, {hi}]"
        )
    assert summary.p_saves_money == 0.0, f"expected no replicate to save money: {summary}"
    avoided = summary.readmissions_avoided[0]
    ratio = summary.cost_per_readmission_avoided[0]
    if avoided != 0:
        assert abs(ratio - expected / avoided) < 1e-6, f"expected {expected / avoided}, {ratio}"
    else:
        assert math.isnan(ratio), f"expected no ratio when none is avoided, found {ratio}"


def test_discount_factors_equal_a_hand_computation() -> None:
    factors = discount_factors(np.array([1, 2, 3]), 0.035)
    by_hand = np.array([1.0, 1 / 1.035, 1 / (1.035 * 1.035)])
    np.testing.assert_allclose(factors, by_hand, rtol=1e-15, err_msg="expected (1.035)^-(k-1)")
    assert (discount_factors(np.array([1, 5]), 0.0) == 1.0).all(), "rate 0: no discounting"


def test_priced_table_equals_a_hand_computation(tmp_path: Path) -> None:
    """Two years at one site, every resource priced: each part and the
    discounted total by hand."""
    text = (
        COSTS_HEAD
        + PW
        + COORD
        + (
            '[travel_hour]\nvalue = 5.0\nunit = "GBP per hour"\nsource = "t"\n'
            '[training_per_new_peer_worker]\nvalue = 100.0\nunit = "GBP per new peer worker"\n'
            'source = "t"\n[readmission]\nvalue = 1000.0\n'
            'unit = "GBP per readmission"\nsource = "t"\n'
        )
    )
    costs = load_costs(_costs(tmp_path, text))
    resources = pd.DataFrame(
        {
            "scenario": "s",
            "replicate": 0,
            "site": "A",
            "year": [1, 2],
            "pw_hours_contracted": [100.0, 50.0],
            "coord_hours_paid": [10.0, 10.0],
            "pw_hours_travel": [4.0, 2.0],
            "coord_hours_travel": [1.0, 0.0],
            "n_pw_started": [2.0, 1.0],
            "n_readmissions": [3.0, 1.0],
        }
    )
    year = [
        100 * 20 + 10 * 30 + 5 * 5 + 2 * 100 + 3 * 1000,
        50 * 20 + 10 * 30 + 2 * 5 + 1 * 100 + 1 * 1000,
    ]
    values = cost_values(resources, costs, 0.035)
    total = values[(values["outcome"] == "cost_net_GBP_discounted") & (values["scope"] == OVERALL)]
    by_hand = year[0] + year[1] / 1.035
    assert abs(float(total["value"].iloc[0]) - by_hand) < 1e-9, f"expected GBP {by_hand}"
    for k in (1, 2):
        got = values[(values["outcome"] == f"cost_net_GBP_year_{k}") & (values["scope"] == "A")]
        assert float(got["value"].iloc[0]) == year[k - 1], f"expected year {k}: {year[k - 1]}"


def test_ratio_interval_is_unbounded_when_avoided_may_be_zero() -> None:
    rng = np.random.default_rng(0)
    cost = np.array([100.0, 120.0, 80.0, 110.0])
    ratio, lo, hi = ratio_interval(cost, np.array([2.0, -1.0, 1.0, -1.5]), rng)
    assert math.isfinite(ratio), f"expected the ratio of means, found {ratio}"
    assert math.isnan(lo), f"avoided straddling 0: expected no lower bound, found {lo}"
    assert math.isnan(hi), f"avoided straddling 0: expected no upper bound, found {hi}"
    ratio, lo, hi = ratio_interval(cost, np.array([2.0, 2.0, 1.0, 3.0]), rng)
    assert abs(ratio - 410 / 8) < 1e-12, f"expected the ratio of means 51.25, found {ratio}"
    assert lo <= ratio <= hi, f"expected {ratio} inside its interval [{lo}, {hi}]"


@pytest.mark.parametrize(
    ("cost", "avoided", "ratio", "expected"),
    [
        (1000.0, 2.0, (500.0, 400.0, 600.0), "GBP 500 [GBP 400, GBP 600] (bootstrap)"),
        (1000.0, 2.0, (500.0, math.nan, math.nan), "GBP 500 (interval not bounded"),
        (65966.0, -0.1, (-659658.0, math.nan, math.nan), "none: on average more readmissions"),
        (1000.0, 0.0, (math.nan, math.nan, math.nan), "none: on average no readmissions"),
        (-100.0, 2.0, (-50.0, math.nan, math.nan), "none: it saves GBP 100 and avoids"),
        (0.0, 0.5, (0.0, math.nan, math.nan), "0: it costs no more and avoids"),
        (0.0, -0.5, (-0.0, math.nan, math.nan), "none: on average more readmissions"),
    ],
)
def test_cost_per_readmission_avoided_is_never_a_misleading_negative_ratio(
    cost: float, avoided: float, ratio: tuple[float, float, float], expected: str
) -> None:
    """A what-if that costs more and avoids fewer readmissions has a negative ratio,
    which would read as a saving: it is said in words instead, as is one that saves."""
    summary = SimpleNamespace(
        incremental_cost=(cost, cost, cost),
        readmissions_avoided=(avoided, avoided, avoided),
        cost_per_readmission_avoided=ratio,
    )
    text = ratio_text(summary, "GBP")  # type: ignore[arg-type]
    assert text.startswith(expected), f"expected {expected!r}..., found {text!r}"
    assert "-" not in text, f"expected no negative amount in {text!r}"


def test_acceptability_at_zero_is_the_share_saving_money() -> None:
    cost = np.array([-10.0, 5.0, 20.0, -1.0])
    avoided = np.array([0.0, 1.0, 1.0, 0.0])
    curve = acceptability(cost, avoided, np.array([0.0, 10.0, 100.0]))
    np.testing.assert_allclose(curve, [0.5, 0.75, 1.0], err_msg="expected shares worth it")


# --- the costs file -------------------------------------------------------------------------


def test_example_costs_file_is_labelled_illustrative() -> None:
    costs = load_costs(EXAMPLE)
    assert "ILLUSTRATIVE" in EXAMPLE.read_text(encoding="utf-8"), "the file says so at the top"
    unlabelled = [k for k, s in costs.sources.items() if "[M]" not in s or "illustrative" not in s]
    assert not unlabelled, f"every source should say [M] and illustrative: {unlabelled}"
    assert costs.readmission_cost == costs.values["bed_day"] * costs.length_of_stay_days, (
        "readmissions cost bed-days times the length of stay"
    )


BAD_FILES = [
    pytest.param(
        COSTS_HEAD + PW + '[coordinator_hour]\nvalue = 30.0\nsource = "x"\n',
        ["coordinator_hour.unit", "missing", "allowed: a string"],
        id="missing-unit",
    ),
    pytest.param(
        COSTS_HEAD + PW.replace("20.0", "-20.0") + COORD,
        ["peer_worker_hour.value", "value -20.0", "out of range", ">= 0"],
        id="negative-cost",
    ),
    pytest.param(
        COSTS_HEAD + PW + COORD + "[coffee_hour]\nvalue = 1.0\n",
        ["coffee_hour", "unknown key", "coordinator_hour"],
        id="unknown-key",
    ),
    pytest.param(
        COSTS_HEAD + PW.replace("GBP per hour", "GBP per day") + COORD,
        ["peer_worker_hour.unit", "'GBP per day'", "allowed: 'GBP per hour'"],
        id="wrong-unit",
    ),
    pytest.param(
        COSTS_HEAD
        + PW
        + COORD
        + '[bed_day]\nvalue = 1.0\nunit = "GBP per bed-day"\nsource = "x"\n',
        ["length_of_stay", "missing", "days per readmission"],
        id="bed-day-without-stay",
    ),
    pytest.param(
        COSTS_HEAD + PW.replace('source = "test figure"\n', "") + COORD,
        ["peer_worker_hour.source", "missing"],
        id="missing-source",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_costs_file_is_one_line_naming_key_value_and_allowed(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = _costs(tmp_path, text)
    with pytest.raises(CostsError) as caught:
        load_costs(path)
    message = str(caught.value)
    assert "\n" not in message, f"expected one line, found:\n{message}"
    assert message.startswith(f"{path}: "), f"expected the file named first: {message}"
    for part in expected:
        assert part in message, f"expected {part!r} in: {message}"


@pytest.mark.parametrize(("text", "expected"), BAD_FILES[:3])
def test_compare_with_a_bad_costs_file_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: list[str]
) -> None:
    base = _costs(tmp_path, ENRICH_TEXT, "base.toml")
    whatif = _costs(tmp_path, ENRICH_TEXT, "whatif.toml")
    costs = _costs(tmp_path, text)
    out = tmp_path / "out"
    argv = ["compare", str(base), str(whatif), "--costs", str(costs), "--out", str(out)]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, f"expected exit 2, got {status}; stderr:\n{err}"
    assert err.startswith("peersim: error: "), f"expected the house error:\n{err}"
    assert err.count("\n") == 1, f"expected one line:\n{err}"
    for part in [str(costs), *expected]:
        assert part in err, f"expected {part!r} in stderr:\n{err}"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "out" not in left, f"no output folder written: {left}"
    assert "out.partial" not in left, f"no partial folder written: {left}"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--discount-rate", "0.05"], ["--discount-rate", "needs --costs"]),
        (["--costs", str(EXAMPLE), "--discount-rate", "1.5"], ["--discount-rate", "0 to below 1"]),
    ],
    ids=["rate-without-costs", "rate-out-of-range"],
)
def test_discount_rate_mistakes_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: list[str]
) -> None:
    base = _costs(tmp_path, ENRICH_TEXT, "base.toml")
    whatif = _costs(tmp_path, ENRICH_TEXT, "whatif.toml")
    out = tmp_path / "out"
    status = main(["compare", str(base), str(whatif), *extra, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2, f"expected exit 2, got {status}; stderr:\n{err}"
    for part in expected:
        assert part in err, f"expected {part!r} in stderr:\n{err}"
    assert not out.exists(), "nothing written"


# --- the command ---------------------------------------------------------------------------


def _run(argv: list[str]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(argv)
    assert status == 0, f"peersim {' '.join(argv)} should succeed, got {status}"
    return buffer.getvalue()


@pytest.fixture(scope="module")
def costed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """ENRICH against one more coordinator hour a week at site G, with the example costs."""
    folder = tmp_path_factory.mktemp("costed")
    base = folder / "base.toml"
    base.write_text(ENRICH_TEXT, encoding="utf-8")
    head, _, tail = ENRICH_TEXT.partition("[sites.G]")
    more = folder / "more_g.toml"
    more.write_text(
        head + "[sites.G]" + tail.replace("supervisor_h_per_week = 10.0",
                                          "supervisor_h_per_week = 11.0", 1),
        encoding="utf-8",
    )  # fmt: skip
    out = folder / "out"
    argv = ["compare", str(base), str(more), "-n", "2", "-w", "1", "--costs", str(EXAMPLE)]
    return out, _run([*argv, "--discount-rate", "0.035", "--out", str(out)])


def test_compare_with_costs_writes_money_brief_and_figures(costed: tuple[Path, str]) -> None:
    out, stdout = costed
    for name in ("economics.csv", "brief.md", "figures/ce_plane.png", "figures/acceptability.png"):
        assert (out / name).is_file(), f"expected {name} to be written"
    table = pd.read_csv(out / "economics.csv")
    for column in (
        "incremental_cost_GBP_discounted",
        "readmissions_avoided_n",
        "bed_days_avoided_days",
        "cost_per_readmission_avoided_GBP",
        "p_saves_money",
        "discount_rate_per_year",
        "budget_impact_GBP_year_1",
    ):
        assert column in table.columns, f"expected economics.csv column {column}"
    assert table["discount_rate_per_year"].tolist() == [0.035], "the rate used is recorded"
    comparison = pd.read_csv(out / "comparison.csv")
    outcomes = set(comparison["outcome"])
    for name in ("pw_hours_contact_h", "coord_hours_paid_h", "cost_net_GBP_discounted"):
        assert name in outcomes, f"expected comparison.csv rows for {name}"
    for text in ("discounted at 3.5% a year", "ILLUSTRATIVE", "resources, whole trial"):
        assert text in stdout, f"expected {text!r} printed"
    brief = (out / "brief.md").read_text(encoding="utf-8")
    for text in ("The question", "In hours", "In money", "The main uncertainty", "illustrative"):
        assert text in brief, f"expected {text!r} in brief.md"
    assert len(brief.split()) < 700, f"a two-minute read: {len(brief.split())} words"


def test_compare_without_costs_reports_hours_and_events_only(
    tmp_path: Path,
) -> None:
    base = _costs(tmp_path, ENRICH_TEXT, "base.toml")
    same = _costs(tmp_path, ENRICH_TEXT, "same.toml")
    out = tmp_path / "out"
    stdout = _run(["compare", str(base), str(same), "-n", "2", "-w", "1", "--out", str(out)])
    assert not (out / "economics.csv").exists(), "no money without a costs file"
    assert "peer worker hours, contact (h)" in stdout, "resources printed in hours"
    assert "GBP" not in stdout, "no currency without a costs file"
    comparison = pd.read_csv(out / "comparison.csv")
    hours = comparison[comparison["outcome"].str.endswith("_h")]
    assert len(hours) > 0, "expected resource rows in hours"
    assert (hours["diff_mean"] == 0).all(), "an identical what-if uses exactly the same hours"
    assert "Not costed" in (out / "brief.md").read_text(encoding="utf-8"), "brief says so"
