"""Group maps: each scan normalised, averaged in the evaluation's age groups, written per group."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from brainage_tf.evaluation.metrics import PAPER_AGE_EDGES
from brainage_tf.explanation import group_maps
from brainage_tf.explanation.saliency import SaliencySettings

SHAPE = (6, 7, 5)
WEIGHTS = np.zeros(SHAPE, np.float32)
WEIGHTS[1, 2, 3], WEIGHTS[4, 4, 1] = 3.0, -1.0  # mean |w| = 4 / 210


def linear_age(volumes):
    """age = sum(w * v): its gradient, with or without noise, is w everywhere."""
    import tensorflow as tf

    return tf.reduce_sum(volumes * WEIGHTS, axis=[1, 2, 3])


def test_groups_average_normalised_maps_and_skip_ages_outside(tmp_path):
    rng = np.random.default_rng(0)
    volumes = rng.normal(size=(5, *SHAPE)).astype(np.float32)
    ages = np.array([1.0, 3.0, 12.0, 30.0, 4.0])  # 30 y lies outside the paper's groups
    settings = SaliencySettings(samples=2, batch_size=2)
    batches = [(volumes[:3], ages[:3]), (volumes[3:], ages[3:])]
    groups = group_maps.group_saliency(linear_age, batches, PAPER_AGE_EDGES, settings)
    assert list(groups) == ["0-5", "6-10", "11-15", "16-22"]
    assert [group.count for group in groups.values()] == [3, 0, 1, 0]
    expected = np.abs(WEIGHTS) / (4.0 / 210.0)  # 157.5 and 52.5 at the two weights
    np.testing.assert_allclose(groups["0-5"].mean_saliency, expected, rtol=1e-4)
    np.testing.assert_allclose(groups["0-5"].mean_volume, volumes[[0, 1, 4]].mean(axis=0), rtol=1e-5)

    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    montage = group_maps.write_group_maps(groups, affine, tmp_path / "explain", settings, "toy")
    assert montage.is_file()
    written = sorted(path.name for path in (tmp_path / "explain").glob("*.nii.gz"))
    assert written == ["group_0-5.nii.gz", "group_11-15.nii.gz"]  # empty groups get no file
    image = nib.load(tmp_path / "explain" / "group_0-5.nii.gz")
    assert np.allclose(image.affine, affine) and image.get_fdata()[1, 2, 3] == pytest.approx(157.5, rel=1e-4)
    assert b"smoothgrad" in image.header["descrip"].tobytes()
    summary = json.loads((tmp_path / "explain" / group_maps.SUMMARY).read_text())
    assert summary["groups"] == {"0-5": {"file": "group_0-5.nii.gz", "n": 3},
                                 "11-15": {"file": "group_11-15.nii.gz", "n": 1}}  # fmt: skip


def test_no_scan_in_any_group_is_an_error(tmp_path):
    groups = group_maps.group_saliency(linear_age, [(np.zeros((1, *SHAPE)), np.array([40.0]))],
                                       PAPER_AGE_EDGES, SaliencySettings(samples=1))  # fmt: skip
    with pytest.raises(ValueError, match="no evaluated scan"):
        group_maps.write_group_maps(groups, np.eye(4), tmp_path, SaliencySettings(), "none")
