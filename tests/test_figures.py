"""Saving figures: the threaded save writes what saving one at a time writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from analysis import figures
from analysis.figures import new_figure, save_figures


def _figures() -> dict[str, Figure]:
    rng = np.random.default_rng(7)
    made = {}
    for k in range(3):
        figure = new_figure(4.0, 3.0)
        ax = figure.subplots()
        ax.plot(np.arange(50), rng.random(50).cumsum(), label=f"line {k}")
        ax.set_title(f"figure {k}")
        ax.legend()
        made[f"figure_{k}.png"] = figure
    return made


def test_threaded_saving_writes_the_same_files_as_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(figures, "default_workers", lambda: 3)  # threads on any machine
    threaded = save_figures(_figures(), tmp_path / "threaded")
    monkeypatch.setattr(figures, "default_workers", lambda: 1)
    serial = save_figures(_figures(), tmp_path / "serial")
    assert [p.name for p in threaded] == [p.name for p in serial] == list(_figures()), (
        "expected the files in the order the figures were given"
    )
    for a, b in zip(threaded, serial, strict=True):
        assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"expected {a} to be a PNG file"
        assert a.read_bytes() == b.read_bytes(), f"expected {a.name} byte for byte as saved alone"


def test_an_error_saving_one_figure_reaches_the_caller(tmp_path: Path) -> None:
    made = _figures()
    broken = made["figure_1.png"]

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    broken.savefig = fail  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space left"):
        save_figures(made, tmp_path)
