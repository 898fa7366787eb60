"""Maps on the model grid and back in a scan's own voxels, including an affinely registered scan."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from brainage_tf.explanation import nifti
from brainage_tf.preprocessing import GRIDS

GRID = GRIDS["tiny"]


def world_x_on_grid() -> np.ndarray:
    """A map whose value is the MNI x (mm) of each grid voxel: trilinear sampling keeps it exact."""
    i = np.arange(GRID.shape[0])
    x = GRID.affine[0, 0] * i + GRID.affine[0, 3]
    return np.broadcast_to(x[:, None, None], GRID.shape).astype(np.float32)


def lps_scan(tmp_path) -> tuple:
    """A 2 mm LPS-ordered scan file around the brain centre; returns its path and affine."""
    affine = np.diag([-2.0, -2.0, 2.0, 1.0])
    affine[:3, 3] = [30.0, 10.0, -20.0]
    path = tmp_path / "scan_lps.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 18, 16), np.float32), affine), path)
    return path, affine


def test_map_header_names_method_and_mni_space(tmp_path):
    path = nifti.write_map(world_x_on_grid(), GRID.affine, tmp_path / "m.nii.gz", "smoothgrad n=32")
    image = nib.load(path)
    assert image.header["descrip"].tobytes().rstrip(b"\0") == b"smoothgrad n=32"
    assert int(image.header["sform_code"]) == 4 and np.allclose(image.affine, GRID.affine)
    with pytest.raises(ValueError, match="longer than 79"):
        nifti.write_map(world_x_on_grid(), GRID.affine, tmp_path / "n.nii.gz", "x" * 80)


@pytest.mark.parametrize("shift_mm", [0.0, 12.0])
def test_scan_space_map_samples_the_grid_at_each_voxels_mni_position(tmp_path, shift_mm):
    scan, affine = lps_scan(tmp_path)
    world_to_atlas = np.eye(4)
    world_to_atlas[0, 3] = shift_mm  # registration found the scan 12 mm to the left of MNI
    path = nifti.write_scan_space_map(world_x_on_grid(), GRID.affine, scan, world_to_atlas,
                                      tmp_path / "native.nii.gz", "ig")  # fmt: skip
    image = nib.load(path)
    assert image.shape == (20, 18, 16) and np.allclose(image.affine, affine)
    assert int(image.header["sform_code"]) == 1
    i = np.arange(20)
    expected = affine[0, 0] * i + affine[0, 3] + shift_mm  # MNI x of each scan column, by hand
    np.testing.assert_allclose(np.asarray(image.dataobj)[:, 5, 5], expected, atol=1e-3)
