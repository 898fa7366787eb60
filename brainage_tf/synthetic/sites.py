"""Acquisition sites of the two cohort profiles and the scanner geometry of one acquisition.

The ``discovery`` profile imitates several 1.5 T sites (lower contrast, 3 mm slices at some
sites); ``replication`` imitates 3 T MPRAGE (1 mm isotropic, LIA/LPS orientation, another bias
field and noise level). The two share no site, orientation or contrast.
"""

from __future__ import annotations

import dataclasses

import numpy as np

PROFILES = ("discovery", "replication")
# Field-of-view centre before the per-scan shift: the middle of the MNI152 head.
_FOV_CENTRE_MNI = np.array([0.0, -18.0, 10.0])


@dataclasses.dataclass(frozen=True)
class Site:
    """Acquisition protocol of one synthetic site.

    Attributes:
        name: Site label written to participants.tsv.
        field_strength: Nominal field strength in tesla (documentation only).
        orientation: Three-letter axis code of the voxel axes (nibabel convention, e.g. "LIA").
        voxel_size: Voxel size in mm along the voxel axes.
        fov_mm: Field of view in mm along world axes (left-right, posterior-anterior, inferior-superior).
        grey: Adult grey-matter intensity relative to adult white matter (= 1); lower contrast is closer to 1.
        csf: CSF intensity relative to adult white matter.
        noise: Rician noise sd relative to adult white matter.
        bias: Amplitude of the multiplicative bias field (log units).
        bias_centre_bright: True for the centre-bright pattern typical of 3 T, False for a coil gradient.
        gain: Scanner units per unit of white-matter intensity.
        slope: NIfTI scl_slope of the stored integers.
    """

    name: str
    field_strength: float
    orientation: str
    voxel_size: tuple[float, float, float]
    fov_mm: tuple[float, float, float]
    grey: float
    csf: float
    noise: float
    bias: float
    bias_centre_bright: bool
    gain: float
    slope: float


# fmt: off
# One site per row: a table reads better than one field per line.
SITES: dict[str, tuple[Site, ...]] = {
    "discovery": (
        Site("disc-a", 1.5, "RAS", (1.0, 1.0, 3.0), (180.0, 216.0, 156.0), 0.72, 0.32, 0.035, 0.10, False, 900.0, 0.5),
        Site("disc-b", 1.5, "LAS", (0.9375, 0.9375, 3.0), (180.0, 210.0, 162.0), 0.70, 0.30, 0.040, 0.12, False, 1100.0, 0.4),
        Site("disc-c", 1.5, "RAS", (1.0, 1.0, 1.5), (176.0, 216.0, 168.0), 0.68, 0.28, 0.030, 0.08, False, 800.0, 0.5),
        Site("disc-d", 1.5, "ASR", (1.0, 1.0, 1.5), (168.0, 220.0, 176.0), 0.70, 0.30, 0.035, 0.10, False, 1000.0, 0.5),
    ),
    "replication": (
        Site("rep-a", 3.0, "LIA", (1.0, 1.0, 1.0), (168.0, 208.0, 176.0), 0.58, 0.15, 0.020, 0.18, True, 1400.0, 0.25),
        Site("rep-b", 3.0, "LPS", (1.0, 1.0, 1.0), (172.0, 212.0, 172.0), 0.60, 0.17, 0.025, 0.15, True, 1600.0, 0.25),
    ),
}
# fmt: on


def _axis_directions(orientation: str) -> np.ndarray:
    """3x3 matrix whose column k is the world unit vector of voxel axis k."""
    directions = {"R": (0, 1.0), "L": (0, -1.0), "A": (1, 1.0), "P": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}
    matrix = np.zeros((3, 3))
    for axis, letter in enumerate(orientation):
        world_axis, sign = directions[letter]
        matrix[world_axis, axis] = sign
    return matrix


def _small_rotation(angles_rad: np.ndarray) -> np.ndarray:
    """Rotation by the given angles about x, then y, then z."""
    cx, cy, cz = np.cos(angles_rad)
    sx, sy, sz = np.sin(angles_rad)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def world_voxel_size(site: Site, voxel_scale: float = 1.0) -> np.ndarray:
    """Voxel size of the site's scans along the world axes (x, y, z), before the oblique tilt.

    Args:
        site: Acquisition site.
        voxel_scale: Multiplies the site's voxel size.

    Returns:
        Voxel edge in mm along left-right, posterior-anterior and inferior-superior.
    """
    return np.abs(_axis_directions(site.orientation)) @ (np.array(site.voxel_size) * voxel_scale)


def scan_affine(
    site: Site, rng: np.random.Generator, voxel_scale: float = 1.0, inferior_mm: float = 0.0
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Scanner affine (voxel -> MNI mm) and shape of one acquisition: reoriented, oblique, shifted FOV.

    Args:
        site: Acquisition site.
        rng: Random generator of this session.
        voxel_scale: Multiplies the site's voxel size (tests use 2 for speed).
        inferior_mm: Field of view added below the site's (a protocol that covers the neck).

    Returns:
        The 4x4 affine and the volume shape.
    """
    directions = _axis_directions(site.orientation)
    voxel_size = np.array(site.voxel_size) * voxel_scale
    extent = np.array(site.fov_mm) + [0.0, 0.0, inferior_mm]
    world_extent = directions.T @ extent
    shape = tuple(
        int(round(abs(extent) / size)) for extent, size in zip(world_extent, voxel_size, strict=True)
    )
    rotation = _small_rotation(np.deg2rad(rng.uniform(-4.0, 4.0, 3)))
    linear = rotation @ directions @ np.diag(voxel_size)
    centre = _FOV_CENTRE_MNI - [0.0, 0.0, inferior_mm / 2.0] + rng.normal(0.0, 5.0, 3)
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = centre - linear @ ((np.array(shape) - 1) / 2.0)
    return affine, shape
