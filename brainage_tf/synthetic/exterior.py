"""What sites vary outside the brain: skull and scalp thickness, scalp-fat brightness, neck coverage.

Real sites differ most outside the brain: a protocol's field of view takes in the neck or
stops at the skull base, fat is bright or dark with the sequence and coil, and cohorts
differ in head size and skull. A whole-head model can learn the site from these rather
than the brain; skull stripping should not. The `varied` exterior option
(`CohortSpec.exterior`) gives each synthetic site its own exterior; `fixed` (the default)
renders every site with the template's one skull and scalp, as every cohort generated
before this option, byte for byte.

The default anatomy's shells, for reference: skull from 2.5 to 8 mm outside the brain,
scalp from 8 to 14 mm, fat at 0.85 of adult white matter, no neck below the template's
field of view. The varied values span what T1 protocols show: scalp-fat brightness from
dark (fat-suppressed, 0.6) to brighter than white matter (1.2), scalp 3-10 mm, skull 3.5-7 mm,
and fields of view with 0-80 mm of neck.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from brainage_tf.synthetic.anatomy import SKULL_INNER_MM, TemplateAnatomy, shell, voxel_world_coordinates

EXTERIOR_OPTIONS = ("fixed", "varied")
# Relative to adult white matter: bone is dark on T1, muscle between CSF and grey matter.
SKULL_INTENSITY = 0.06
_MUSCLE_INTENSITY = 0.45
# The neck: a cylinder about the MNI head's vertical axis, of this radius in an adult.
_NECK_CENTRE_MM = (0.0, -18.0)
_NECK_RADIUS_MM = 45.0


@dataclasses.dataclass(frozen=True)
class Exterior:
    """One site's head outside the brain.

    Attributes:
        skull_mm: Skull thickness.
        scalp_mm: Scalp and fat thickness over the skull, and the neck's fat layer.
        scalp_intensity: Fat brightness relative to adult white matter.
        neck_mm: Field of view below the template's (the neck), 0 for none.
    """

    skull_mm: float
    scalp_mm: float
    scalp_intensity: float
    neck_mm: float


# fmt: off
# The discovery sites mix thick bright fat and long necks with thin dark scalps; the replication
# sites (3 T MPRAGE) are darker and one covers the neck, so the two profiles differ outside the brain.
VARIED_EXTERIORS: dict[str, Exterior] = {
    "disc-a": Exterior(7.0, 9.0, 1.10, 60.0),
    "disc-b": Exterior(4.5, 4.0, 0.70, 0.0),
    "disc-c": Exterior(6.0, 10.0, 1.20, 40.0),
    "disc-d": Exterior(5.0, 6.0, 0.90, 0.0),
    "rep-a": Exterior(3.5, 3.0, 0.60, 0.0),
    "rep-b": Exterior(4.0, 5.0, 0.95, 80.0),
}
# fmt: on


def site_exterior(option: str, site_name: str) -> Exterior | None:
    """The exterior a site's scans are rendered with: None for `fixed` (the anatomy's own shells)."""
    return VARIED_EXTERIORS[site_name] if option == "varied" else None


def exterior_intensity(anatomy: TemplateAnatomy, exterior: Exterior) -> tuple[np.ndarray, np.ndarray]:
    """Template-space intensity of the skull and of the scalp of `exterior`, apart."""
    skull_outer = SKULL_INNER_MM + exterior.skull_mm
    skull = shell(anatomy.outside_mm, SKULL_INNER_MM, skull_outer)
    scalp = shell(anatomy.outside_mm, skull_outer, skull_outer + exterior.scalp_mm)
    return skull * SKULL_INTENSITY, scalp * exterior.scalp_intensity


def with_neck(
    image: np.ndarray, brain: np.ndarray, affine: np.ndarray, exterior: Exterior, growth: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grown head with `exterior.neck_mm` of neck below it, on a grid extended downwards.

    Args:
        image: The grown head's intensity on the template grid (RAS+, z rising with the index).
        brain: Its grown brain mask on the same grid.
        affine: The grid's voxel-to-MNI affine.
        exterior: The site's exterior (neck_mm > 0).
        growth: The head's linear growth factor (1 for the template's adult size).

    Returns:
        (image, brain, affine) on the extended grid; the neck fills the cylinder below the
        brain's lowest voxel, muscle inside a fat layer of `exterior.scalp_mm`.
    """
    voxel_mm = float(abs(affine[2, 2]))
    added = int(np.ceil(exterior.neck_mm / voxel_mm))
    pad = ((0, 0), (0, 0), (added, 0))
    image, brain = np.pad(image, pad), np.pad(brain, pad)
    affine = affine.copy()
    affine[:3, 3] -= affine[:3, 2] * added
    rows = np.flatnonzero((brain >= 0.5).any(axis=(0, 1)))
    below = np.arange(image.shape[2]) < (rows[0] - 1 if rows.size else image.shape[2])
    world = voxel_world_coordinates(image.shape[:2] + (1,), affine)[:2, :, :, 0]
    radial = np.hypot(world[0] - _NECK_CENTRE_MM[0], world[1] - _NECK_CENTRE_MM[1])
    radius = _NECK_RADIUS_MM * growth
    muscle = shell(radial, -np.inf, radius - exterior.scalp_mm)
    fat = shell(radial, radius - exterior.scalp_mm, radius)
    neck = (muscle * _MUSCLE_INTENSITY + fat * exterior.scalp_intensity)[:, :, np.newaxis] * below
    return np.maximum(image, neck.astype(np.float32)), brain, affine
