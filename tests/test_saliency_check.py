"""lss.saliency_check: the share of a saliency map near the labelled point, against chance."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lss.saliency_check import saliency_share_near, window_spacing_mm


def test_window_spacing_mm_whole_slice_and_crop():

    w = SimpleNamespace(centre_xy=(99.5, 49.5), source_shape=(100, 200))
    assert window_spacing_mm(w, 100, (0.5, 0.8)) == (0.5, 1.6)
    assert window_spacing_mm(w, 64, (0.5, 0.5), crop_px=(40, 32)) == (0.3125, 0.25)
    with pytest.raises(ValueError, match=r"pixel_spacing must be positive and finite"):
        window_spacing_mm(w, 64, (0.5, 0.0))
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        window_spacing_mm(w, 0, (0.5, 0.5))


def test_saliency_share_near_a_concentrated_map_is_all_near():
    m = np.zeros((3, 20, 20))
    m[1, 10, 10], m[2, 11, 9] = 2.0, 1.0  # within 1.5 mm of (10, 10) at 1 mm pixels
    r = saliency_share_near(m, (10, 10), (1.0, 1.0), radius_mm=1.5)
    assert r["share"] == 1.0
    assert r["uniform_share"] == 9 / 400  # the 3 x 3 pixels around the point
    assert r["ratio"] == 1.0 / (9 / 400)
    # mass far from the point counts against the share, over all slices or one
    m[2, 0, 0] = 1.0
    def share(**kw):
        return saliency_share_near(m, (10, 10), (1.0, 1.0), radius_mm=1.5, **kw)["share"]
    assert share() == 3 / 4
    assert (share(slice_index=1), share(slice_index=2)) == (1.0, 1 / 2)
    assert np.isnan(share(slice_index=0))  # no mass on that slice


def test_saliency_share_near_uniform_map_and_anisotropic_pixels():
    m = np.full((2, 16, 32), 0.3)
    r = saliency_share_near(m, (16.0, 8.0), (2.0, 1.0), radius_mm=4.0)
    # pixel centres within 4 mm: rows 8 +- 2 (2 mm each), columns 16 +- 4 (1 mm each)
    rows, cols = np.ogrid[:16, :32]
    disc = ((rows - 8) * 2.0) ** 2 + (cols - 16.0) ** 2 <= 16
    assert disc[8, 12] and disc[6, 16] and not disc[5, 16] and not disc[8, 11]
    assert r["uniform_share"] == disc.mean()
    np.testing.assert_allclose(r["share"], r["uniform_share"], rtol=1e-12)
    np.testing.assert_allclose(r["ratio"], 1.0, rtol=1e-12)


def test_saliency_share_near_clips_the_disc_at_the_border():
    m = np.ones((10, 10))
    corner = saliency_share_near(m, (0, 0), (1.0, 1.0), radius_mm=2.0)
    centre = saliency_share_near(m, (5, 5), (1.0, 1.0), radius_mm=2.0)
    assert centre["uniform_share"] == 13 / 100  # the whole 13-pixel disc
    assert corner["uniform_share"] == 6 / 100  # its quarter: (0..2, 0), (0..1, 1), (0, 2)
    assert corner["share"] == corner["uniform_share"]


def test_saliency_share_near_empty_map_has_no_share():
    r = saliency_share_near(np.zeros((2, 8, 8)), (4, 4), (1.0, 1.0), radius_mm=1.0)
    assert np.isnan(r["share"]) and np.isnan(r["ratio"])
    assert r["uniform_share"] == 5 / 64


@pytest.mark.parametrize(
    ("saliency", "point", "spacing", "kwargs", "match"),
    [
        (np.ones(8), (1, 1), (1, 1), {}, r"\(Z, H, W\) or \(H, W\) map, got shape \(8,\)"),
        (-np.ones((8, 8)), (1, 1), (1, 1), {}, "finite, non-negative"),
        (np.full((8, 8), np.nan), (1, 1), (1, 1), {}, "finite, non-negative"),
        (np.ones((8, 8)), (8, 1), (1, 1), {}, r"point_px \(8.0, 1.0\) lies outside the 8 x 8"),
        (np.ones((8, 8)), (np.nan, 1), (1, 1), {}, "point_px must be finite"),
        (np.ones((8, 8)), (1,), (1, 1), {}, "point_px must be two numbers"),
        (np.ones((8, 8)), (1, 1), (1, -1), {}, "spacing_mm must be positive and finite"),
        (np.ones((8, 8)), (1, 1), (1, 1), {"radius_mm": 0}, "radius_mm must be positive"),
        (np.ones((8, 8)), (1.5, 1.5), (1, 1), {"radius_mm": 0.5}, "covers no pixel centre"),
        (np.ones((2, 8, 8)), (1, 1), (1, 1), {"slice_index": 2},
         r"slice_index must be in \[0, 1\], got 2"),
    ],
)
def test_saliency_share_near_rejects_bad_input(saliency, point, spacing, kwargs, match):
    with pytest.raises(ValueError, match=match):
        saliency_share_near(saliency, point, spacing, **kwargs)
