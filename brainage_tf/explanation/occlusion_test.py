"""Slabs as slice_lstm pools them, occlusion by the slab mean, and the importance table."""

from __future__ import annotations

import numpy as np
import pytest

from brainage_tf.explanation import occlusion
from brainage_tf.preprocessing import GRIDS


def test_slabs_are_the_pooling_windows_without_the_remainder():
    assert occlusion.pooled_slabs(21, 2) == [(i, i + 2) for i in range(0, 20, 2)]
    assert len(occlusion.pooled_slabs(56, 4)) == 14 and occlusion.pooled_slabs(3, 3) == [(0, 3)]
    for bad in (0, 22):
        with pytest.raises(ValueError, match=f"^pool size must be between 1 and the 21 slices, got {bad}$"):
            occlusion.pooled_slabs(21, bad)


def test_occlude_replaces_each_slab_by_its_own_mean_only():
    volume = np.arange(2 * 3 * 6, dtype=np.float32).reshape(2, 3, 6)
    occluded = occlusion.occlude(volume, 2, [(0, 2), (4, 6)])
    assert np.all(occluded[..., 0:2] == volume[..., 0:2].mean())
    assert np.all(occluded[..., 4:6] == volume[..., 4:6].mean())
    assert np.array_equal(occluded[..., 2:4], volume[..., 2:4]) and not np.shares_memory(occluded, volume)


def squares_of_slices_4_to_7(volumes):
    """A model reading only axial slices 4-7 (slab 2 of 2-slice slabs, slab 1 of 4-slice slabs)."""
    import tensorflow as tf

    return tf.reduce_mean(volumes[:, :, :, 4:8] ** 2, axis=[1, 2, 3])


def test_only_the_slabs_the_model_reads_matter_and_positions_are_in_mm():
    grid = GRIDS["tiny"]  # z: 21 slices of 8 mm, voxel 0 centred at -75 mm
    volume = np.random.default_rng(0).normal(size=grid.shape).astype(np.float32)
    table = occlusion.slab_importance(squares_of_slices_4_to_7, volume, "axial", 2, grid.affine)
    assert list(table.columns) == list(occlusion.COLUMNS) and len(table) == 10
    assert table.loc[0, ["first_slice", "last_slice", "from_mm", "to_mm"]].tolist() == [0, 1, -79.0, -63.0]
    assert table.loc[9, ["first_slice", "last_slice", "from_mm", "to_mm"]].tolist() == [18, 19, 65.0, 81.0]
    moved = set(table.loc[table["importance"] > 1e-6, "slab"])
    assert moved == {2, 3}
    # A slab replaced by its mean loses its variance: the mean of squares can only fall.
    assert (table.loc[[2, 3], "age_change"] < 0).all()
    assert table["predicted_age"].iloc[0] == pytest.approx(float(np.mean(volume[:, :, 4:8] ** 2)), rel=1e-5)


def test_the_bar_plot_draws_one_bar_per_slab(tmp_path):
    grid = GRIDS["tiny"]
    volume = np.random.default_rng(1).normal(size=grid.shape).astype(np.float32)
    table = occlusion.slab_importance(squares_of_slices_4_to_7, volume, "axial", 2, grid.affine)
    fig = occlusion._slab_figure(table, "axial", "toy")
    (ax,) = fig.axes
    assert len(ax.patches) == 10 and "inferior to superior" in ax.get_ylabel()
    assert [tick.get_text() for tick in ax.get_yticklabels()][0] == "0: -79 to -63"
    path = occlusion.plot_slab_importance(table, "axial", tmp_path / "slabs.png", "toy")
    assert path.read_bytes()[:4] == b"\x89PNG"
