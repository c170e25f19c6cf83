"""What every figure of :mod:`lss.viz` shares: titles that name the data, display ranges,
and the page rules that keep a figure readable in the book.

The book is a Jupyter Book 1.x site (sphinx-book-theme) whose content column is about
:data:`PAGE_WIDTH_PX` = 730 CSS pixels wide; a wider image is scaled down to it, its text
with it. The rules:

* text is at least :data:`MIN_FONT_PT` = 9 pt *as the reader sees it*
  (:func:`rendered_min_font_pt`);
* a figure is at most :data:`FIGURE_WIDTH_IN` wide, so that it is not scaled down and
  the font sizes set in the code are the sizes read;
* figures are drawn at :data:`MIN_DPI` = 150 dots per inch or more, on screen (the
  notebook's inline backend uses ``figure.dpi``) and in files (``savefig.dpi``);
* panels are laid out by constrained layout, so that titles, labels and colour bars do
  not overlap, and every colour bar says what its colour means.
"""

from __future__ import annotations

from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.text import Text

__all__ = [
    "CSS_PX_PER_INCH",
    "FIGURE_WIDTH_IN",
    "MIN_DPI",
    "MIN_FONT_PT",
    "PAGE_WIDTH_PX",
    "SMALL_PT",
    "TITLE_PT",
    "apply_page_style",
    "data_title",
    "display_range",
    "page_figure",
    "page_subplots",
    "rendered_min_font_pt",
]

#: Width of the book's content column in CSS pixels (sphinx-book-theme, Jupyter Book 1.x).
PAGE_WIDTH_PX = 730

#: CSS pixels per inch: a CSS pixel is 1/96 inch, a point 1/72 inch.
CSS_PX_PER_INCH = 96

#: The smallest font size a reader may see, in points.
MIN_FONT_PT = 9.0

#: Dots per inch of a figure, at the least, on screen and in files.
MIN_DPI = 150

#: The widest figure lss.viz makes, inches: the column (730 / 96 = 7.6 in) less the
#: 0.1 in the inline backend pads each side with (``bbox_inches="tight"``) and a margin.
FIGURE_WIDTH_IN = 7.3

#: Font size of the smallest text lss.viz writes (tick labels of dense panels, legends,
#: annotations, panel titles), and of titles, points.
SMALL_PT = 9.0
TITLE_PT = 10.0


def apply_page_style() -> None:
    """Raise matplotlib's ``figure.dpi`` and ``savefig.dpi`` to :data:`MIN_DPI`.

    Applied when :mod:`lss.viz` is imported, so that the figures a chapter makes itself
    are sharp too; values already higher are kept, and ``savefig.dpi = "figure"`` (save
    at the figure's own dpi) is left as it is. Font sizes are not touched: matplotlib's
    defaults (10 to 12 pt) are above the minimum.
    """
    rc = mpl.rcParams
    rc["figure.dpi"] = max(float(rc["figure.dpi"]), MIN_DPI)
    if rc["savefig.dpi"] != "figure":
        rc["savefig.dpi"] = max(float(rc["savefig.dpi"]), MIN_DPI)


def page_figure(*, height: float, width: float = FIGURE_WIDTH_IN,
                layout: str = "constrained") -> Any:
    """A pyplot figure under the page rules (see :func:`page_subplots`), without axes."""
    if width > FIGURE_WIDTH_IN + 1e-9:
        raise ValueError(f"width {width} in is wider than the page's {FIGURE_WIDTH_IN} in")
    dpi = max(float(mpl.rcParams["figure.dpi"]), MIN_DPI)
    return plt.figure(figsize=(width, height), layout=layout, dpi=dpi)


def page_subplots(nrows: int = 1, ncols: int = 1, *, height: float,
                  width: float = FIGURE_WIDTH_IN, layout: str = "constrained",
                  **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots`` under the page rules: at most page width, constrained layout,
    at least :data:`MIN_DPI`.

    Parameters
    ----------
    nrows, ncols : int
    height, width : float
        Figure size in inches; ``width`` may not exceed :data:`FIGURE_WIDTH_IN`.
    layout : str
        Matplotlib layout engine, ``"constrained"`` unless a caller lays the figure out
        itself (``"tight"`` where a chapter calls ``plt.tight_layout()`` afterwards,
        which would otherwise warn that it replaces the constrained layout).
    **kwargs
        Passed to :func:`matplotlib.pyplot.subplots` (``squeeze``, ``sharey``, ...).

    Returns
    -------
    fig, axes
        As :func:`matplotlib.pyplot.subplots`.
    """
    fig = page_figure(height=height, width=width, layout=layout)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _drawn_texts(fig: Any) -> list[Text]:
    """The figure's visible, non-empty Text artists: titles, axis and tick labels,
    legends, annotations, colour-bar labels (those of an axis turned off excluded)."""
    hidden: set[int] = set()
    for ax in fig.get_axes():
        if not ax.get_visible():
            hidden |= {id(t) for t in ax.findobj(Text)}
        elif not ax.axison:
            for axis in (ax.xaxis, ax.yaxis):
                hidden |= {id(t) for t in axis.findobj(Text)}
    return [t for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def rendered_min_font_pt(fig: Any, page_width_px: float = PAGE_WIDTH_PX, *,
                         dpi: float | None = None) -> float:
    """The smallest font size of a figure as a reader of the book sees it, in points.

    A CSS pixel is 1/96 inch. An image ``w`` inches wide is shown at its CSS size,
    ``w * 96`` pixels, unless that is wider than the content column (``page_width_px``,
    730 for the book); then it is scaled down to the column, and its text with it. A
    font of ``font_pt`` points is therefore read at::

        font_pt * min(1, page_width_px / (w * 96))

    ``w`` is the figure's width, or the width the inline backend saves when that is
    larger: it crops the figure to what is drawn (``bbox_inches="tight"``), plus
    ``savefig.pad_inches`` each side, so text sticking out of the figure widens the
    image.

    A notebook's inline PNG is ``w * figure.dpi`` pixels and has no display width, so
    the browser shows it at ``w * dpi`` CSS pixels: at ``dpi`` >= 96 larger than its
    CSS size, and the formula above is a lower bound. Give ``dpi`` to get that size
    instead: ``font_pt * (dpi / 96) * min(1, page_width_px / (w * dpi))``.

    Every visible, non-empty Text artist counts: titles, axis labels, tick labels,
    legend entries and titles, annotations, colour-bar labels and texts drawn into the
    axes; tick labels of an axis turned off (``ax.axis("off")``) do not.

    Parameters
    ----------
    fig : matplotlib Figure
    page_width_px : float
        Width of the column the image is shown in, CSS pixels.
    dpi : float or None
        Pixels per inch of the PNG shown without a display width; None: the image is
        shown at its CSS size (the bound used by the tests).

    Returns
    -------
    float
        ``inf`` for a figure without text.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(10, 3))
    >>> _ = fig.subplots().set_title("x", fontsize=12)
    >>> _ = fig.axes[0].axis("off")
    >>> round(rendered_min_font_pt(fig), 3)  # 12 * 730 / (10 * 96)
    9.125
    """
    fig.draw_without_rendering()  # lay the figure out as it will be drawn
    width_in = float(fig.get_size_inches()[0])
    tight = fig.get_tightbbox()
    if tight is not None:
        width_in = max(width_in, tight.width + 2 * float(mpl.rcParams["savefig.pad_inches"]))
    texts = _drawn_texts(fig)
    if not texts:
        return float("inf")
    smallest = min(float(t.get_fontsize()) for t in texts)
    if dpi is None:
        return smallest * min(1.0, page_width_px / (width_in * CSS_PX_PER_INCH))
    return smallest * (dpi / CSS_PX_PER_INCH) * min(1.0, page_width_px / (width_in * dpi))


def data_title(base: str, data_label: str | None) -> str:
    return base if not data_label else f"{base}\n{data_label}"


def display_range(img: np.ndarray, vmin: float | None, vmax: float | None
                   ) -> tuple[float, float]:
    """Grey-level range for display: 0.5th and 99.5th percentiles unless given."""
    lo, hi = np.percentile(img, (0.5, 99.5)) if vmin is None or vmax is None else (vmin, vmax)
    lo = float(lo) if vmin is None else float(vmin)
    hi = float(hi) if vmax is None else float(vmax)
    return lo, (hi if hi > lo else lo + 1.0)
