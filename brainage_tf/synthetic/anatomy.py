"""The adult template anatomy every synthetic subject starts from.

Tissue maps come from the MNI152 2009a template and its grey/white-matter probability maps,
which nilearn ships with the package (nothing is downloaded). CSF is the brain mask minus
tissue; the lateral and third ventricles are the deep CSF around the midline; a CSF, skull and
scalp shell surround the brain.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from brainage_tf import array_cache

TEMPLATE_RESOLUTION_MM = 2.0
# Bump when _build_template_anatomy builds other maps: the cached ones are then rebuilt.
ANATOMY_VERSION = 3
# The extra-axial CSF ends, and the skull starts, this far outside the brain mask.
SKULL_INNER_MM = 2.5
# Width of the soft level-set boundaries, in units of the smoothed probability maps.
_LEVEL_EDGE_WIDTH = 0.06


@dataclasses.dataclass(frozen=True)
class TemplateAnatomy:
    """Template-space tissue maps (2 mm MNI grid) and the lookup tables of the age effects.

    Attributes:
        affine: Voxel-to-MNI affine of the 2 mm grid.
        brain: The MNI152 brain mask (0 or 1): the brain and the CSF inside it, the region the
            synthetic scans' true brain masks are drawn from.
        tissue: GM + WM probability.
        csf: CSF probability, ventricles and extra-axial shell included.
        ventricles: Ventricular part of ``csf``.
        wm_smooth: Smoothed WM probability whose level sets move the GM/WM boundary.
        ventricles_smooth: Smoothed ventricle map whose level sets move the ventricle wall.
        skull: Skull probability.
        scalp: Scalp probability.
        outside_mm: Distance outside the brain mask in mm (0 inside): other skulls and scalps
            (`brainage_tf.synthetic.exterior`).
        wm_levels, wm_shares: Level of ``wm_smooth`` -> resulting WM share of tissue (decreasing).
        ventricle_levels, ventricle_factors: Level of ``ventricles_smooth`` -> volume / template volume.
        centre_voxel: Brain centre in voxel coordinates, the fixed point of growth.
    """

    affine: np.ndarray
    brain: np.ndarray
    tissue: np.ndarray
    csf: np.ndarray
    ventricles: np.ndarray
    wm_smooth: np.ndarray
    ventricles_smooth: np.ndarray
    skull: np.ndarray
    scalp: np.ndarray
    outside_mm: np.ndarray
    wm_levels: np.ndarray
    wm_shares: np.ndarray
    ventricle_levels: np.ndarray
    ventricle_factors: np.ndarray
    centre_voxel: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def shell(distance: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """Soft indicator of inner < distance <= outer with ~1 mm edges."""
    return (_sigmoid((distance - inner) / 0.6) - _sigmoid((distance - outer) / 0.6)).astype(np.float32)


def soft_level_set(smooth_map: np.ndarray, level: float) -> np.ndarray:
    """Soft indicator of ``smooth_map > level``: lowering ``level`` grows the region smoothly.

    Args:
        smooth_map: A smoothed probability map such as ``TemplateAnatomy.wm_smooth``.
        level: Threshold in (0, 1).

    Returns:
        Values in (0, 1), the same shape as ``smooth_map``.
    """
    return _sigmoid((smooth_map - level) / _LEVEL_EDGE_WIDTH)


def voxel_world_coordinates(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """World coordinates of every voxel centre.

    Args:
        shape: Volume shape.
        affine: Voxel-to-world affine.

    Returns:
        float32 array of shape (3, *shape).
    """
    index = np.indices(shape, dtype=np.float32).reshape(3, -1)
    return (affine[:3, :3] @ index + affine[:3, 3:4]).reshape((3, *shape)).astype(np.float32)


def load_template_anatomy() -> TemplateAnatomy:
    """The template anatomy from nilearn's bundled MNI152 2009a maps (no download).

    Built once per machine, then read from the package's array cache
    (`brainage_tf.array_cache`, bit-exact): building takes 6-8 s, and every process that
    generates a cohort needs it.

    Returns:
        The anatomy shared by every synthetic subject.
    """
    key = array_cache.cache_key(
        "synthetic-anatomy", ANATOMY_VERSION, TEMPLATE_RESOLUTION_MM, importlib.metadata.version("nilearn")
    )
    return TemplateAnatomy(**array_cache.cached_arrays(key, _build_template_anatomy))


def _build_template_anatomy() -> dict[str, np.ndarray]:
    from nilearn import datasets

    resolution = int(TEMPLATE_RESOLUTION_MM)
    grey_img = datasets.load_mni152_gm_template(resolution=resolution)
    grey = np.clip(grey_img.get_fdata(dtype=np.float32), 0, 1)
    white = np.clip(datasets.load_mni152_wm_template(resolution=resolution).get_fdata(dtype=np.float32), 0, 1)
    mask = datasets.load_mni152_brain_mask(resolution=resolution).get_fdata(dtype=np.float32) > 0.5
    affine = grey_img.affine.copy()

    tissue = np.minimum(grey + white, 1.0) * mask
    brain_csf = np.clip(1.0 - tissue, 0, 1) * mask
    depth_mm = ndimage.distance_transform_edt(mask) * TEMPLATE_RESOLUTION_MM
    outside_mm = ndimage.distance_transform_edt(~mask) * TEMPLATE_RESOLUTION_MM
    world = voxel_world_coordinates(mask.shape, affine)
    # Lateral and third ventricles: deep CSF in a box around the MNI midline structures.
    central_box = (
        (np.abs(world[0]) < 32) & (world[1] > -50) & (world[1] < 35) & (world[2] > -8) & (world[2] < 40)
    )
    ventricles = (brain_csf * ((depth_mm > 10) & central_box)).astype(np.float32)
    csf = (brain_csf + shell(outside_mm, 0.0, SKULL_INNER_MM)).astype(np.float32)
    skull = shell(outside_mm, SKULL_INNER_MM, 8.0)
    scalp = shell(outside_mm, 8.0, 14.0)

    wm_smooth = ndimage.gaussian_filter(white, 1.0).astype(np.float32)
    ventricles_smooth = ndimage.gaussian_filter(ventricles, 1.0).astype(np.float32)
    wm_levels = np.linspace(0.05, 0.95, 91)
    tissue_total = float(tissue.sum())
    wm_shares = np.array(
        [float((soft_level_set(wm_smooth, level) * tissue).sum()) / tissue_total for level in wm_levels]
    )
    ventricle_levels = np.linspace(0.05, 0.95, 91)
    ventricle_total = float(ventricles.sum())
    ventricle_factors = np.array(
        [
            float(soft_level_set(ventricles_smooth, level).sum()) / ventricle_total
            for level in ventricle_levels
        ]
    )
    centre_voxel = np.array(ndimage.center_of_mass(tissue))
    return dict(
        affine=affine,
        brain=mask.astype(np.float32),
        tissue=tissue.astype(np.float32),
        csf=csf,
        ventricles=ventricles,
        wm_smooth=wm_smooth,
        ventricles_smooth=ventricles_smooth,
        skull=skull,
        scalp=scalp,
        outside_mm=outside_mm.astype(np.float32),
        wm_levels=wm_levels,
        wm_shares=wm_shares,
        ventricle_levels=ventricle_levels,
        ventricle_factors=ventricle_factors,
        centre_voxel=centre_voxel,
    )
