"""Where the phantom drew each structure of an axial slice: landmarks for figures.

A figure that names the structures of a slice asks this module where they are; it
copies no renderer constant. Every position comes from the shapes the renderer paints
(:mod:`lss.phantom.axial_geometry`), so a change to the phantom moves the landmark
with its structure, and a test checks that each landmark sits on the tissue it names.

Examples
--------
>>> s = labelled_axial_slice(shape=(128, 128), pixel_spacing=1.6, noise=False)
>>> s.image.shape, s.level
((128, 128), 'L4/L5')
>>> s.landmarks["left facet joint"][0] > s.landmarks["right facet joint"][0]
True
"""

from __future__ import annotations

import numpy as np

from lss.phantom.anatomy import AxialAnatomy, Placement, axial_anatomy, sample_traits
from lss.phantom.axial import AxialSeriesRenderer
from lss.phantom.axial_geometry import (
    SIDE_SIGN,
    SKIN_MM,
    disc_shape,
    erector_spinae_shape,
    facet_joint,
    flavum_shape,
    multifidus_shape,
    psoas_shape,
    rootlet_centres,
    slice_weights,
    trunk_back,
)

__all__ = ["LANDMARKS", "LabelledSlice", "axial_landmarks", "labelled_axial_slice"]

#: The landmark names, patient's sides (the patient's left is on the image's right).
LANDMARKS: tuple[str, ...] = (
    "intervertebral disc",
    "thecal sac (CSF)",
    "nerve rootlets",
    "left subarticular recess",
    "right subarticular recess",
    "left facet joint",
    "right facet joint",
    "ligamentum flavum",
    "psoas",
    "multifidus",
    "erector spinae",
    "subcutaneous fat",
)

# Where a landmark aims inside its structure, where the centre is not the best spot.
#: Ventral CSF, clear of the rootlets in the back of the sac: this fraction of the
#: sac's antero-posterior semi-axis in front of the anatomy origin (the sac's centre).
_CSF_AIM = 0.45
#: The multifidus: this far (mm) behind its centre.
_MULTIFIDUS_AIM_MM = 3.0
#: The erector spinae: this far (mm) lateral of its centre, where the multifidus,
#: painted over its medial part, leaves it visible.
_ERECTOR_AIM_MM = 14.0


class LabelledSlice:
    """A phantom axial slice at a disc and where its structures are.

    Attributes
    ----------
    image : (H, W) float32 ndarray
    landmarks : dict of str to (x, y)
        Pixel position of each named structure (see :func:`labelled_axial_slice`).
    pixel_spacing : float
        Millimetres per pixel.
    level : str
    """

    __slots__ = ("image", "landmarks", "pixel_spacing", "level")

    def __init__(
        self,
        image: np.ndarray,
        landmarks: dict[str, tuple[float, float]],
        pixel_spacing: float,
        level: str,
    ) -> None:
        self.image = image
        self.landmarks = landmarks
        self.pixel_spacing = pixel_spacing
        self.level = level


def axial_landmarks(anat: AxialAnatomy) -> dict[str, tuple[float, float]]:
    """Where the structures of the slice through ``anat``'s disc plane are drawn.

    Parameters
    ----------
    anat : AxialAnatomy
        The level's anatomy and severities.

    Returns
    -------
    dict of str to (u, v)
        For each name of :data:`LANDMARKS`, a point on that structure in the anatomy
        frame (mm; ``u`` toward the patient's left, ``v`` toward the back). Sided
        structures without a side in their name are the left ligamentum flavum and
        multifidus and the right psoas and erector spinae (one label each in a figure).
    """
    w = slice_weights(0.0)
    sc = anat.canal * w.stenosis
    disc = disc_shape(anat, w)
    rootlet = max(rootlet_centres(anat, sc, w.disc), key=lambda c: c[1])  # the most dorsal
    marks: dict[str, tuple[float, float]] = {
        "intervertebral disc": (disc.cx, disc.cy),
        "thecal sac (CSF)": (0.0, -_CSF_AIM * anat.sac_b),
        "nerve rootlets": rootlet,
        "left subarticular recess": anat.recess("left"),
        "right subarticular recess": anat.recess("right"),
    }
    for side, sev in (("left", anat.left), ("right", anat.right)):
        joint = facet_joint(anat, side, sev * w.stenosis).joint
        marks[f"{side} facet joint"] = (joint.cx, joint.cy)
    flavum = flavum_shape(anat, SIDE_SIGN["left"], anat.left, w.stenosis)
    marks["ligamentum flavum"] = (flavum.cx, flavum.cy)
    psoas = psoas_shape(anat, SIDE_SIGN["right"])
    marks["psoas"] = (psoas.cx, psoas.cy)
    multifidus = multifidus_shape(SIDE_SIGN["left"])
    marks["multifidus"] = (multifidus.cx, multifidus.cy + _MULTIFIDUS_AIM_MM)
    erector = erector_spinae_shape(SIDE_SIGN["right"])
    marks["erector spinae"] = (erector.cx + SIDE_SIGN["right"] * _ERECTOR_AIM_MM, erector.cy)
    # Midway through the fat, between the deep tissue and the skin.
    marks["subcutaneous fat"] = (0.0, trunk_back(anat) - (SKIN_MM + anat.fat) / 2)
    return {name: marks[name] for name in LANDMARKS}


def labelled_axial_slice(
    *,
    level: str = "L4/L5",
    left: float = 0.1,
    right: float = 0.1,
    canal: float = 0.1,
    shape: tuple[int, int] = (384, 384),
    pixel_spacing: float = 0.6,
    seed: int = 0,
    noise: bool = True,
) -> LabelledSlice:
    """Render a phantom axial T2 slice through a disc and locate its structures.

    The slice is drawn by the phantom's renderer (:mod:`lss.phantom.axial`) with the
    anatomy centred and unrotated; the positions of the structures, known in the
    phantom's anatomy frame (:func:`axial_landmarks`), map to pixels exactly.

    Parameters
    ----------
    level : str
        Disc level.
    left, right, canal : float
        Severity latents in [0, 1] (see :func:`lss.phantom.render_axial`).
    shape : (H, W)
    pixel_spacing : float
        mm per pixel.
    seed : int
        Chooses the patient and the noise.
    noise : bool
        Add Rician noise.

    Returns
    -------
    LabelledSlice
        Its ``landmarks`` hold the (x, y) pixel of each name of :data:`LANDMARKS`.
    """
    rng = np.random.default_rng(seed)
    traits = sample_traits(rng)
    anat = axial_anatomy(traits, level, rng, canal=canal, left=left, right=right)
    h, w = int(shape[0]), int(shape[1])
    place = Placement(
        cx=w / 2, cy=h * 0.42, rotation=0.0, scale=traits.size, pixel_spacing=pixel_spacing
    )
    renderer = AxialSeriesRenderer((h, w), {level: anat}, {level: place}, rng)
    image = renderer.render(level, 0.0, rng if noise else None)
    landmarks = {k: place.to_pixel(u, v) for k, (u, v) in axial_landmarks(anat).items()}
    return LabelledSlice(image, landmarks, pixel_spacing, level)
