"""Does a run's saliency point at the recess? The sanity check of chapter 5.

A Grad-CAM or occlusion map of one study is easy to read into. :func:`saliency_audit`
measures instead: for each validation study of a run, the share of the map's mass that
lies within ``radius_mm`` of the radiologist's labelled point, beside the share a
uniform map would put there (:func:`lss.saliency_check.saliency_share_near`). A model
that reads the recess puts several times the uniform share there; a model that has
learned only the class frequencies does not.

The window is the one the run's model saw: the whole slice, or, for a region-of-interest
run, the crop centred where its localiser points (never at the table's point, which is
used only to score the map).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lss.data import build_index, level_window, scan_series, series_dir
from lss.data.window import crop_pixels, source_to_window
from lss.interpret import grad_cam, occlusion_sensitivity
from lss.run import RunDir
from lss.saliency_check import saliency_share_near, window_spacing_mm

__all__ = ["study_window", "saliency_audit", "summarise_audit"]

METHODS = ("grad_cam", "occlusion")


def _validation_rows(run: RunDir, config, root: Path, n_studies: int | None
                     ) -> pd.DataFrame:
    """The run's validation studies with their index rows (series, instance, x, y)."""
    split = run.read_split()
    index = build_index(root, config.condition, config.level)
    val = split[split["split"] == "val"][["study_id"]].merge(index, on="study_id")
    val = val[val["x"].notna() & val["y"].notna()].reset_index(drop=True)
    return val if n_studies is None else val.head(n_studies)


def _centres(run: RunDir, config, root: Path, val: pd.DataFrame, cache_dir) -> np.ndarray:
    """Window centres as the run's evaluation uses them: the localiser's for a crop
    (where the run has one), the table's points otherwise."""
    centres = None
    if config.preprocess.crop_mm is not None:
        from lss.localiser import run_centres

        centres, _ = run_centres(run, root, val, cache_dir=cache_dir)
    return val[["x", "y"]].to_numpy(float) if centres is None else np.asarray(centres)


def study_window(config, root: str | Path, row, centre=None):
    """One study's window as a run's model sees it, and the labelled point in it.

    Parameters
    ----------
    config : lss.config.Config
        The run's config (its ``preprocess`` settings).
    row : index row
        With ``study_id``, ``series_id``, ``instance_number``, ``x``, ``y``.
    centre : (x, y), optional
        The crop centre in source pixels (a region-of-interest run: its localiser's
        point, :func:`lss.localiser.run_centres`); default the table's point.

    Returns
    -------
    window, point_px, spacing_mm
        The :class:`lss.data.Window`, the labelled point in window pixels (it may lie
        outside a crop the localiser misplaced) and the mm of one window pixel.
    """
    header = scan_series(series_dir(root, row.study_id, row.series_id))
    pre = config.preprocess
    centre = (row.x, row.y) if centre is None else tuple(centre)
    window = level_window(header, int(row.instance_number), pre, centre_xy=centre)
    crop_px = None if pre.crop_mm is None else crop_pixels(pre.crop_mm, header.pixel_spacing)
    point = source_to_window((row.x, row.y), window, pre.image_size, crop_px=crop_px)
    spacing = window_spacing_mm(window, pre.image_size, header.pixel_spacing, crop_px=crop_px)
    return window, point, spacing


def _study_maps(model, config, root: Path, row, centre, methods, patch: int | None
                ) -> dict[str, float]:
    """One study's shares near its labelled point, for each method."""
    window, point, spacing = study_window(config, root, row, centre)
    side = config.preprocess.image_size
    out = {"study_id": int(row.study_id), "label": int(row.label)}
    if not (-0.5 <= point[0] <= side - 0.5 and -0.5 <= point[1] <= side - 0.5):
        return out | {"outside": True}  # the localiser's crop missed the labelled point
    proba = np.asarray(model.predict(window.volume[None, ..., None], verbose=0))[0]
    c = int(proba.argmax())
    out |= {"predicted": c, "outside": False}
    for method in methods:
        if method == "grad_cam":
            m = grad_cam(model, window.volume, class_index=c)
        else:
            m = occlusion_sensitivity(model, window.volume, class_index=c,
                                      patch=patch or max(4, side // 8))
        r = saliency_share_near(m, point, spacing, radius_mm=10.0)
        out |= {f"{method}_share": r["share"], f"{method}_max": float(m.max()),
                "uniform_share": r["uniform_share"]}
    return out


def saliency_audit(run_dir: str | Path, root: str | Path | None = None, *,
                   cache_dir: str | Path | None = None, n_studies: int | None = None,
                   methods: tuple[str, ...] = METHODS, occlusion_patch: int | None = None
                   ) -> pd.DataFrame:
    """The share of each validation study's saliency within 10 mm of its labelled point.

    Parameters
    ----------
    run_dir : str or Path
        A run folder of :func:`lss.train.train` (whole slices or a crop).
    root : str or Path, optional
        The data root (default: the run's).
    n_studies : int, optional
        Only the first ``n_studies`` validation studies (occlusion costs one forward pass
        per patch position: 512 for 8 slices of 128 pixels and 16-pixel patches).
    methods : tuple of str
        ``"grad_cam"`` and/or ``"occlusion"``, each explaining the predicted grade.
    occlusion_patch : int, optional
        Patch side in window pixels (default: an eighth of the window).

    Returns
    -------
    DataFrame
        One row per study: ``study_id``, ``label``, ``predicted``, ``<method>_share``,
        ``<method>_max`` (the map's largest value: for occlusion, the largest share of
        the predicted probability one patch removes), ``uniform_share`` and
        ``outside`` (True where a crop did not contain the labelled point: no share is
        computed; the row says so rather than being dropped).
        ``attrs["data"]`` names the data.
    """
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        raise ValueError(f"methods must be some of {METHODS}, got {methods!r}")
    run = RunDir(run_dir)
    root = run.data_root(root)
    model, config = run.load()
    val = _validation_rows(run, config, root, n_studies)
    if val.empty:
        raise ValueError(f"Run {run.path} has no validation study with a labelled point")
    centres = _centres(run, config, root, val, cache_dir)
    rows = [_study_maps(model, config, root, r, c, methods, occlusion_patch)
            for r, c in zip(val.itertuples(), centres, strict=True)]
    table = pd.DataFrame(rows)
    table.attrs["data"] = run.read_manifest().get("data", {}).get("label")
    return table


def summarise_audit(table: pd.DataFrame) -> dict[str, float]:
    """Mean shares over the studies whose window held the point, and their ratio to
    the uniform share: ``n``, ``n_outside``, ``uniform_share``, ``<method>_share`` and
    ``<method>_ratio`` for each method present."""
    inside = table[~table["outside"].astype(bool)]
    out: dict[str, float] = {"n": int(len(inside)), "n_outside": int(len(table) - len(inside)),
                             "uniform_share": float(inside["uniform_share"].mean())}
    for method in METHODS:
        col = f"{method}_share"
        if col in inside:
            share = float(inside[col].mean())
            out[col] = share
            out[f"{method}_ratio"] = share / out["uniform_share"]
    return out
