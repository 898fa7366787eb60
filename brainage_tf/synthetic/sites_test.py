"""Tests of the scanner geometry of each site."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from brainage_tf.synthetic.sites import SITES, Site, scan_affine, world_voxel_size


@pytest.mark.parametrize("site", SITES["discovery"] + SITES["replication"], ids=lambda site: site.name)
def test_world_voxel_size_follows_the_orientation(site: Site) -> None:
    affine, shape = scan_affine(site, np.random.default_rng(0), voxel_scale=2.0)
    # The tilt is at most 4 degrees, so each voxel axis still runs mostly along one world axis.
    world_axis = np.abs(affine[:3, :3]).argmax(axis=0)
    assert sorted(world_axis) == [0, 1, 2]
    voxel_sizes = nib.affines.voxel_sizes(affine)
    np.testing.assert_allclose(world_voxel_size(site, 2.0)[world_axis], voxel_sizes)
    # The field of view is a whole number of voxels: within half a voxel of the site's.
    assert np.all(
        np.abs(np.array(shape) * voxel_sizes - np.array(site.fov_mm)[world_axis]) <= voxel_sizes / 2
    )
