"""Figures, and only figures: they draw what they are given and name its data.

* :mod:`lss.viz.images` -- slices, windows, slice order, flips, localiser points;
* :mod:`lss.viz.results` -- confusion matrix, training curves, reliability, class shares,
  the comparison table, the architecture, a run beside the paper;
* :mod:`lss.viz.saliency` -- a window's slices with Grad-CAM or occlusion laid over them,
  slice features and LSTM states;
* :mod:`lss.viz.anatomy` -- a phantom slice with its structures named, labelled slices;
* :mod:`lss.viz.levels` -- a found level: sagittal points, axial planes, chosen slice.

Every public figure is re-exported here (``lss.viz.plot_slice``), with the page rules of
:mod:`lss.viz._style`: :func:`page_subplots` makes a figure that fits the book's column
(constrained layout, at least 150 dpi) and :func:`rendered_min_font_pt` says how large its
smallest text reads there. Importing :mod:`lss.viz` raises matplotlib's ``figure.dpi``
and ``savefig.dpi`` to 150 (:func:`lss.viz._style.apply_page_style`).
"""

from lss.viz._style import apply_page_style, page_subplots, rendered_min_font_pt
from lss.viz.anatomy import (
    plot_axial_anatomy,
    plot_labelled_examples,
)
from lss.viz.images import (
    AXIAL_ORIENTATION,
    AXIAL_ORIENTATION_FLIPPED,
    flip_horizontal,
    plot_flip,
    plot_localiser_examples,
    plot_preprocessing_steps,
    plot_slice,
    plot_slice_order,
    plot_window,
)
from lss.viz.levels import plot_found_level
from lss.viz.results import (
    plot_architecture,
    plot_class_distribution,
    plot_confusion_matrix,
    plot_experiment_table,
    plot_history,
    plot_left_right_x,
    plot_paper_comparison,
    plot_reliability,
)
from lss.viz.saliency import (
    plot_montage,
    plot_saliency,
    plot_sequence,
    plot_slices,
)

__all__ = [
    "AXIAL_ORIENTATION",
    "AXIAL_ORIENTATION_FLIPPED",
    "flip_horizontal",
    "plot_architecture",
    "plot_axial_anatomy",
    "plot_class_distribution",
    "plot_confusion_matrix",
    "plot_experiment_table",
    "plot_flip",
    "plot_found_level",
    "plot_history",
    "plot_labelled_examples",
    "plot_left_right_x",
    "plot_localiser_examples",
    "plot_montage",
    "plot_paper_comparison",
    "plot_preprocessing_steps",
    "plot_reliability",
    "plot_saliency",
    "plot_sequence",
    "plot_slice",
    "plot_slice_order",
    "plot_slices",
    "plot_window",
    "page_subplots",
    "rendered_min_font_pt",
]

apply_page_style()
