"""What the summary and the figures of ``peersim run`` need from its tables, in bounded memory.

``RunAggregates.from_files`` reads the run's ``site_weeks.parquet`` and
``trial.parquet`` a batch of rows at a time and keeps only:

- the trial table, one row per replicate (about 0.3 KB a replicate for ENRICH:
  the figures draw every replicate's readmission and odds ratio);
- the end-of-delivery rows of ``site_weeks`` (one per replicate and site), only the
  columns the summary and the figures read (about 0.1 KB a replicate and site);
- per trajectory column, site and week the median and band of the figures (a few
  numbers per week, whatever the number of replicates).

The bands are exact quantiles, so they need every replicate's value of a (column,
site) pair at once: the file is read in passes, each holding the values of as many
(column, site) pairs as fit in ``BAND_VALUES`` values (4 MB; one pair at a
time beyond that). So the memory this takes is that of the trial and end-of-delivery
rows, well under a megabyte per thousand replicates, plus a fixed budget; never that
of the whole tables (ENRICH, 1,000 replicates: 144 MB of tables as pandas).

``RunAggregates.from_replicates`` gives the same numbers from tables in memory
(a ``ReplicateSet``): both call the same functions on the same values (tested).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simulation import Scenario
from simulation.runner import ReplicateSet, release_arrow_memory

# (site_weeks column) of the per-site delivery over time (figures.TRAJECTORIES).
TRAJECTORY_COLUMNS: tuple[str, ...] = (
    "met_share",
    "engaged_share",
    "fidelity",
    "ward_relationship",
    "pw_morale",
    "caseload_mean",
)
# site_weeks columns read at the end of delivery (summary.SITE_MEASURES, the fidelity domains).
END_COLUMNS: tuple[str, ...] = (
    "met_share",
    "engaged_share",
    "fidelity",
    "fid_relationships",
    "fid_reciprocity",
    "fid_leadership",
    "fid_strengths",
)
# Fewer replicates than this: bands are min-max instead of 5-95% percentiles.
MIN_REPLICATES_FOR_PERCENTILES = 20
BAND_QUANTILES: tuple[float, float] = (0.05, 0.95)
# Values of the band columns held at once while the bands are computed (a float and a
# week each: 16 bytes, so 4 MB).
BAND_VALUES = 1 << 18
# Rows of the file read at a time.
BATCH_ROWS = 1 << 15


@dataclass(frozen=True)
class RunAggregates:
    """The summary's and the figures' inputs of one run of replicates.

    ``end``: the end-of-delivery rows (``replicate``, ``site``, ``week`` and
    ``END_COLUMNS``), in the order of the table. ``bands[column][site]``: a frame
    indexed by week with ``median``, ``lo``, ``hi`` across replicates (``band_by_week``).
    ``sites``: the sites in the order they first appear; ``site_order``: in the order
    of the site column's categories (the colours of the figures).
    """

    scenario: Scenario
    master_seed: int
    n_replicates: int
    trial: pd.DataFrame
    end: pd.DataFrame
    bands: dict[str, dict[str, pd.DataFrame]]
    sites: tuple[str, ...]
    site_order: tuple[str, ...]

    @classmethod
    def from_replicates(cls, replicates: ReplicateSet) -> RunAggregates:
        """The aggregates of tables held in memory."""
        site_weeks = replicates.site_weeks
        n = replicates.n_replicates
        bands: dict[str, dict[str, pd.DataFrame]] = {}
        for column in (c for c in TRAJECTORY_COLUMNS if c in site_weeks):
            bands[column] = {
                str(site): band_by_week(frame[["week", column]], column, n)
                for site, frame in site_weeks.groupby("site", observed=True, sort=False)
            }
        end = end_of_delivery(site_weeks)
        end = end[[c for c in ("replicate", "site", "week", *END_COLUMNS) if c in end]]
        return cls(
            scenario=replicates.scenario,
            master_seed=replicates.master_seed,
            n_replicates=n,
            trial=replicates.trial,
            end=end,
            bands=bands,
            sites=_first_appearance(site_weeks["site"]),
            site_order=_category_order(site_weeks["site"]),
        )

    @classmethod
    def from_files(
        cls,
        scenario: Scenario,
        master_seed: int,
        site_weeks: Path,
        trial: Path,
        *,
        band_values: int = BAND_VALUES,
    ) -> RunAggregates:
        """The aggregates of a run's Parquet files (``replicate`` first in each), read
        a batch of rows at a time (see the module's docstring for what is held)."""
        trial_frame = pd.read_parquet(trial)
        n = len(trial_frame)
        # pre_buffer=False: a row group at a time (pre-buffered, the reader held a third
        # of the file: 35 MB at 1,000 ENRICH replicates).
        source = pq.ParquetFile(site_weeks, pre_buffer=False)
        names = set(source.schema_arrow.names)
        # Pass 1: the sites, and the last week of each replicate.
        last_week: dict[int, int] = {}
        seen: dict[str, None] = {}
        categories: list[str] | None = None
        for batch in _batches(source, ["replicate", "site", "week"]):
            replicate, week = _numpy(batch, "replicate"), _numpy(batch, "week")
            ids, inverse = np.unique(replicate, return_inverse=True)
            latest = np.full(len(ids), np.iinfo(np.int64).min)
            np.maximum.at(latest, inverse, week)
            for r, w in zip(ids.tolist(), latest.tolist(), strict=True):
                last_week[r] = max(w, last_week.get(r, w))
            codes, labels = _site_codes(batch.column("site"))
            seen.update(dict.fromkeys(labels[k] for k in pd.unique(codes) if k >= 0))
            categories = labels if categories is None else categories
        sites = tuple(seen)
        present = set(sites)
        site_order = tuple(s for s in categories or () if s in present) or sites
        # Pass 2: the end-of-delivery rows.
        wanted = [c for c in ("replicate", "site", "week", *END_COLUMNS) if c in names]
        ends = []
        for batch in _batches(source, wanted):
            last = pd.Series(_numpy(batch, "replicate")).map(last_week).to_numpy()
            mask = _numpy(batch, "week") == last
            ends.append(batch.filter(pa.array(mask)).to_pandas())
        end = pd.concat(ends, ignore_index=True)
        # Passes 3...: the bands, as many (column, site) pairs a pass as the budget holds.
        columns = [c for c in TRAJECTORY_COLUMNS if c in names]
        rows_per_site = max(1, source.metadata.num_rows // max(1, len(sites)))
        per_pass = max(1, band_values // rows_per_site)
        pairs = [(column, site) for column in columns for site in sites]
        bands: dict[str, dict[str, pd.DataFrame]] = {column: {} for column in columns}
        for start in range(0, len(pairs), per_pass):
            chunk = pairs[start : start + per_pass]
            for (column, site), frame in _pair_values(source, chunk):
                bands[column][site] = band_by_week(frame, column, n)
        bands = {column: {site: bands[column][site] for site in sites} for column in columns}
        return cls(scenario, master_seed, n, trial_frame, end, bands, sites, site_order)


def as_aggregates(run: RunAggregates | ReplicateSet) -> RunAggregates:
    return run if isinstance(run, RunAggregates) else RunAggregates.from_replicates(run)


def end_of_delivery(site_weeks: pd.DataFrame) -> pd.DataFrame:
    """The last recorded week of each site in each replicate: the end of delivery."""
    last = site_weeks.groupby("replicate")["week"].transform("max")
    return site_weeks[site_weeks["week"] == last].reset_index(drop=True)


def uses_percentiles(n_replicates: int) -> bool:
    return n_replicates >= MIN_REPLICATES_FOR_PERCENTILES


def band_by_week(frame: pd.DataFrame, column: str, n_replicates: int) -> pd.DataFrame:
    """Median and band (``lo``, ``hi``) of ``column`` per ``week`` across replicates."""
    qs = BAND_QUANTILES if uses_percentiles(n_replicates) else (0.0, 1.0)
    grouped = frame.groupby("week")[column]
    return pd.DataFrame(
        {"median": grouped.median(), "lo": grouped.quantile(qs[0]), "hi": grouped.quantile(qs[1])}
    )


def _batches(source: pq.ParquetFile, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """``columns`` of the file, ``BATCH_ROWS`` rows at a time (however it was written).
    Read as Arrow arrays and NumPy, not pandas: converting every batch to a DataFrame
    left the process 20 MB bigger after 1,000 replicates than after 100."""
    for batch in source.iter_batches(batch_size=BATCH_ROWS, columns=list(columns)):
        yield batch
        release_arrow_memory()


def _numpy(batch: pa.RecordBatch, column: str) -> np.ndarray:
    """A column as NumPy (missing floats as NaN)."""
    return batch.column(column).to_numpy(zero_copy_only=False)


def _pair_values(
    source: pq.ParquetFile, pairs: Sequence[tuple[str, str]]
) -> Iterator[tuple[tuple[str, str], pd.DataFrame]]:
    """Every row's ``week`` and value of each (column, site) pair, in one pass."""
    columns = list(dict.fromkeys(column for column, _ in pairs))
    weeks: dict[tuple[str, str], list[np.ndarray]] = {pair: [] for pair in pairs}
    values: dict[tuple[str, str], list[np.ndarray]] = {pair: [] for pair in pairs}
    for batch in _batches(source, ["site", "week", *columns]):
        codes, names = _site_codes(batch.column("site"))
        code_of = {name: k for k, name in enumerate(names)}
        week = _numpy(batch, "week")
        for column, name in pairs:
            mask = codes == code_of.get(name, -2)
            weeks[(column, name)].append(week[mask])
            values[(column, name)].append(_numpy(batch, column)[mask])
    for pair in pairs:
        column = pair[0]
        yield (
            pair,
            pd.DataFrame(
                {"week": np.concatenate(weeks.pop(pair)), column: np.concatenate(values.pop(pair))},
                copy=False,
            ),
        )


def _site_codes(site: pa.Array) -> tuple[np.ndarray, list[str]]:
    """Each row's site as a code into the returned names (-1: missing)."""
    if not pa.types.is_dictionary(site.type):
        site = pc.dictionary_encode(site)
    codes = site.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return codes, [str(name) for name in site.dictionary.to_pylist()]


def _first_appearance(site: pd.Series) -> tuple[str, ...]:
    return tuple(str(s) for s in pd.unique(site.astype(str)))


def _category_order(site: pd.Series) -> tuple[str, ...]:
    """The sites present, in the order of the column's categories (first appearance
    for a column without categories)."""
    if isinstance(site.dtype, pd.CategoricalDtype):
        present = set(site.astype(str))
        return tuple(str(c) for c in site.cat.categories if str(c) in present)
    return _first_appearance(site)
