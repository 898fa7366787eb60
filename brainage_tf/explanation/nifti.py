"""Saliency maps as NIfTI files: on the model grid (MNI152) and back in a scan's own space.

The way back goes through `brainage_tf.preprocessing.resample_image`, the same
anti-aliased trilinear resampling that brought the scan onto the grid. A scan
preprocessed with `registration="none"` is in MNI millimetres already, so its
voxels are looked up in the grid map directly. With `registration="affine"`,
`ScanMetadata.world_to_atlas` (the estimated scan-to-MNI affine) maps each scan
voxel to MNI millimetres first: the map is sampled at `world_to_atlas @ affine`
and saved with the scan's own affine, so it overlays the original scan.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from brainage_tf.preprocessing import resample_image

DESCRIP_BYTES = 80  # the NIfTI-1 header's descrip field


def write_map(
    data: np.ndarray, affine: np.ndarray, path: str | os.PathLike, descrip: str, space: str = "mni"
) -> Path:
    """Saves a float32 map with `descrip` in its header (the method and settings that made it).

    Args:
        data: The map.
        affine: Its voxel-to-world affine.
        path: The .nii.gz file to write.
        descrip: Method and settings, at most 79 bytes.
        space: "mni" (sform/qform code 4, the model grid) or "scanner" (code 1, a scan's own space).

    Raises:
        ValueError: `descrip` does not fit the header's 80 bytes (it would be cut silently).
    """
    if len(descrip.encode()) >= DESCRIP_BYTES:
        raise ValueError(f"NIfTI descrip {descrip!r} is longer than {DESCRIP_BYTES - 1} bytes")
    image = nib.Nifti1Image(np.asarray(data, np.float32), np.asarray(affine, np.float64))
    image.header["descrip"] = descrip
    image.header.set_xyzt_units("mm")
    image.set_qform(image.affine, code=space)
    image.set_sform(image.affine, code=space)
    path = Path(path)
    nib.save(image, path)
    return path


def to_scan_space(
    grid_map: np.ndarray, grid_affine: np.ndarray, scan_path: str | os.PathLike, world_to_atlas: np.ndarray
) -> nib.Nifti1Image:
    """Resamples a map on the model grid onto the voxels of the scan it explains.

    Args:
        grid_map: The map on the model grid.
        grid_affine: The grid's voxel-to-MNI affine.
        scan_path: The original scan (its header gives shape and affine; voxels are not read).
        world_to_atlas: 4x4 affine from the scan's world millimetres to MNI millimetres.

    Returns:
        The map on the scan's voxel grid, with the scan's own affine.
    """
    header = nib.load(os.fspath(scan_path))
    shape = tuple(int(n) for n in header.shape[:3])
    to_atlas = np.asarray(world_to_atlas, np.float64) @ header.affine
    on_grid = nib.Nifti1Image(np.asarray(grid_map, np.float32), grid_affine)
    return nib.Nifti1Image(resample_image(on_grid, shape, to_atlas), header.affine)


def write_scan_space_map(
    grid_map, grid_affine, scan_path, world_to_atlas, path: str | os.PathLike, descrip: str
) -> Path:
    """`to_scan_space`, saved with `descrip` in the scan's world coordinates."""
    image = to_scan_space(grid_map, grid_affine, scan_path, world_to_atlas)
    return write_map(np.asarray(image.dataobj), image.affine, path, descrip, space="scanner")
