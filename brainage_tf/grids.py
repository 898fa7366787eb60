"""The model grids in MNI152 space, and the MNI152 template and brain mask on each.

Every grid covers one field of view centred on the MNI152 brain, so all grids see the same
anatomy; `brainage_tf.preprocessing` resamples every scan onto one of them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata

import nibabel.processing
import numpy as np

from brainage_tf import array_cache
from brainage_tf.registration import mni152_images
from brainage_tf.resampling import resample_image

# The MNI152 brain's bounding box is x -72..72, y -107..73, z -72..82 mm; every
# grid covers the same 192 x 240 x 168 mm box centred on it, so all grids see
# the same anatomy.
FIELD_OF_VIEW_MM = (192.0, 240.0, 168.0)
FIELD_OF_VIEW_CENTRE_MM = (0.0, -17.0, 5.0)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A target grid in MNI152 space, axes in RAS+ order (x: L->R, y: P->A, z: I->S).

    Attributes:
        name: Preset name.
        shape: Voxels along x, y, z.
        voxel_size_mm: Isotropic voxel edge in millimetres.
    """

    name: str
    shape: tuple[int, int, int]
    voxel_size_mm: float

    @property
    def field_of_view_mm(self) -> tuple[float, float, float]:
        """Extent of the grid along x, y, z in millimetres."""
        return tuple(n * self.voxel_size_mm for n in self.shape)

    @property
    def affine(self) -> np.ndarray:
        """Voxel-to-MNI-millimetre affine; voxel centres tile the field of view."""
        size = self.voxel_size_mm
        corner = [c - n * size / 2.0 for c, n in zip(FIELD_OF_VIEW_CENTRE_MM, self.shape, strict=True)]
        affine = np.diag([size, size, size, 1.0])
        affine[:3, 3] = [c + size / 2.0 for c in corner]
        return affine

    def describe(self) -> str:
        """One line for dataset descriptions and logs."""
        shape = "x".join(str(n) for n in self.shape)
        fov = "x".join(f"{v:g}" for v in self.field_of_view_mm)
        return (
            f"{self.name} grid: {shape} voxels at {self.voxel_size_mm:g} mm isotropic "
            f"({fov} mm, MNI152 space, RAS+)"
        )


# Coarsest first: the TFDS builders list their configs in this order.
GRIDS: dict[str, Grid] = {
    "tiny": Grid("tiny", (24, 30, 21), 8.0),
    "small": Grid("small", (64, 80, 56), 3.0),
    "paper": Grid("paper", (128, 160, 112), 1.5),
}
GRID_NAMES: tuple[str, ...] = tuple(GRIDS)


def get_grid(grid: str | Grid) -> Grid:
    """Returns the named preset grid, or ``grid`` itself if it is a Grid.

    Raises:
        ValueError: for an unknown preset name.
    """
    if isinstance(grid, Grid):
        return grid
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; choose one of {GRID_NAMES}")
    return GRIDS[grid]


@functools.lru_cache(maxsize=8)
def template_on_grid(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 template and its boolean brain mask on ``grid``.

    Cached in memory per process, and on disk across processes (`brainage_tf.array_cache`).

    Args:
        grid: A target grid (see `get_grid`).

    Returns:
        (float32 template, bool brain mask), both of shape ``grid.shape``.
    """
    key = array_cache.cache_key(
        f"mni152-{grid.name}", grid.shape, grid.affine, importlib.metadata.version("nilearn")
    )
    arrays = array_cache.cached_arrays(key, lambda: _build_template_on_grid(grid))
    return arrays["template"], arrays["mask"]


def _build_template_on_grid(grid: Grid) -> dict[str, np.ndarray]:
    template, mask = mni152_images()
    return {"template": resample_image(template, grid.shape, grid.affine), "mask": mask_onto_grid(mask, grid)}


def mask_onto_grid(mask: nibabel.Nifti1Image, grid: Grid) -> np.ndarray:
    """A brain mask carried onto ``grid``: where it interpolates (trilinear) to 0.5 or more.

    The template's mask and a scan's own (`brainage_tf.skull_strip.mask_on_grid`) are carried alike.
    """
    on_grid = nibabel.processing.resample_from_to(mask, (grid.shape, grid.affine), order=1, cval=0.0)
    return np.asarray(on_grid.dataobj) >= 0.5
