"""Text and tables for the app's pages, as HTML made here from Markdown.

solara's own Markdown component loads KaTeX for mathematics, whose files
solara-assets lacks: every text redraw gave two 404s in the browser's console.
"""

from __future__ import annotations

from typing import Any

import solara
from markdown import markdown
from solara.components.echarts import EchartsWidget


def html(text: str, classes: str = "peersim-text") -> None:
    """Markdown shown as HTML, rendered here: solara's Markdown loads KaTeX for
    mathematics, whose files solara-assets lacks (404s in the console)."""
    solara.HTML(
        tag="div", unsafe_innerHTML=markdown(text, extensions=["tables"]), classes=[classes]
    )


def table(header: list[str], rows: list[list[str]], classes: str = "peersim-table") -> None:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    html("\n".join(lines), classes)


class _Echarts(EchartsWidget):
    """solara's ECharts widget with its template guarded: solara's sets an option on
    a chart not yet created when an update arrives while ECharts is still loading
    (a TypeError in the console after a reload)."""

    template_file = (__file__, "echarts.vue")


def chart(option: dict[str, Any], css_class: str, height_px: int) -> None:
    """An ECharts chart filling the width, ``height_px`` high."""
    _Echarts.element(
        option=option,
        attributes={"style": f"height: {height_px}px; width: 100%;", "class": css_class},
        responsive=True,
        maps={},
        on_mouseover_enabled=False,
        on_mouseout_enabled=False,
    )
