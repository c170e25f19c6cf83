"""A synthetic DICOM phantom of lumbar spine MRI in the RSNA 2024 Kaggle layout.

No real images ship with this project, so the phantom writes studies that look,
to a loader, exactly like the competition's: the same tables and spellings, the
same folder layout, MR Image Storage DICOM files with real geometry tags, instance
numbers that are not 1..N and stacks that are not in instance order. The axial T2
slices show the anatomy a reader of chapter 1 learns to grade, and stenosis
narrows the structures it narrows in reality. :func:`labelled_axial_slice` renders
a slice with the position of each structure it drew, for figures that name them.

Every phantom directory carries ``PHANTOM.json``; use :func:`is_phantom` to label
results computed from it.

Examples
--------
>>> import tempfile
>>> from lss.phantom import make_phantom, is_phantom
>>> root = make_phantom(tempfile.mkdtemp() + "/phantom", n_studies=2, n_test_studies=0, workers=1)
>>> is_phantom(root)
True
"""

from lss.phantom.anatomy import GRADE_LATENT, severity_latent
from lss.phantom.axial import AxialSlice, render_axial
from lss.phantom.build import make_phantom, sample_tables
from lss.phantom.landmarks import LANDMARKS, LabelledSlice, axial_landmarks, labelled_axial_slice
from lss.phantom.marker import MARKER_NAME, is_phantom, read_marker

__all__ = [
    "make_phantom",
    "sample_tables",
    "render_axial",
    "AxialSlice",
    "labelled_axial_slice",
    "LabelledSlice",
    "axial_landmarks",
    "LANDMARKS",
    "is_phantom",
    "read_marker",
    "MARKER_NAME",
    "GRADE_LATENT",
    "severity_latent",
]
