"""What every figure of :mod:`lss.viz` shares: titles that name the data, display ranges."""

from __future__ import annotations

import numpy as np

__all__ = ["data_title", "display_range"]


def data_title(base: str, data_label: str | None) -> str:
    return base if not data_label else f"{base}\n{data_label}"


def display_range(img: np.ndarray, vmin: float | None, vmax: float | None
                   ) -> tuple[float, float]:
    """Grey-level range for display: 0.5th and 99.5th percentiles unless given."""
    lo, hi = np.percentile(img, (0.5, 99.5)) if vmin is None or vmax is None else (vmin, vmax)
    lo = float(lo) if vmin is None else float(vmin)
    hi = float(hi) if vmax is None else float(vmax)
    return lo, (hi if hi > lo else lo + 1.0)
