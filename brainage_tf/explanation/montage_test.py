"""Montage layout and orientation: the subject's left on the image's left, superior up."""

from __future__ import annotations

import numpy as np
import pytest

from brainage_tf.explanation import montage
from brainage_tf.preprocessing import GRIDS

GRID = GRIDS["tiny"]


def ramp(axis: int) -> np.ndarray:
    """A volume whose value is the voxel index along `axis`."""
    return np.broadcast_to(np.arange(GRID.shape[axis]).reshape([-1 if a == axis else 1 for a in range(3)]),
                           GRID.shape).astype(np.float32)  # fmt: skip


@pytest.mark.parametrize(
    ("view", "horizontal", "vertical"), [("axial", 0, 1), ("coronal", 0, 2), ("sagittal", 1, 2)]
)
def test_each_view_puts_its_axes_right_and_up(view, horizontal, vertical):
    _, axis, h, v, _, _ = next(entry for entry in montage.VIEWS if entry[0] == view)
    assert (h, v) == (horizontal, vertical)
    across, up = (
        montage.cut_plane(ramp(horizontal), axis, 3, h, v),
        montage.cut_plane(ramp(vertical), axis, 3, h, v),
    )
    # Columns step along `horizontal` (x: left to right; y: back to front), rows bottom-up along `vertical`.
    assert np.all(np.diff(across, axis=1) == 1) and np.all(np.diff(across, axis=0) == 0)
    assert np.all(np.diff(up, axis=0) == 1) and np.all(np.diff(up, axis=1) == 0)
    assert across.shape == (GRID.shape[vertical], GRID.shape[horizontal])


def test_scan_montage_has_three_views_of_four_slices_and_a_colour_scale(tmp_path):
    rng = np.random.default_rng(0)
    volume, saliency = rng.normal(size=GRID.shape), rng.normal(size=GRID.shape)
    fig = montage._scan_figure(volume, saliency, GRID.affine, "scan")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 12 and all(len(ax.images) == 2 for ax in images)
    assert [ax.get_title().split()[0] for ax in images[::4]] == ["axial", "coronal", "sagittal"]
    assert "z=" in images[0].get_title() and images[0].get_title().endswith(" mm")
    assert any("saliency" in ax.get_ylabel() for ax in fig.axes if not ax.images)  # the colour bar
    path = montage.scan_montage(volume, saliency, GRID.affine, tmp_path / "m.png", "scan")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_the_skull_stripping_mask_is_outlined_on_every_panel_it_crosses():
    volume = np.random.default_rng(0).normal(size=GRID.shape)
    # Saliency peaking at the centre, so every panel's plane cuts the mask.
    centre = (np.array(GRID.shape) - 1)[:, None, None, None] / 2
    distance = np.linalg.norm(np.indices(GRID.shape) - centre, axis=0)
    saliency = np.exp(-((distance / 5.0) ** 2))
    mask = np.zeros(GRID.shape, bool)
    mask[4:-4, 4:-4, 3:-3] = True
    plain = montage._scan_figure(volume, saliency, GRID.affine, "scan")
    outlined = montage._scan_figure(volume, saliency, GRID.affine, "scan", mask)
    assert sum(len(ax.collections) for ax in plain.axes if ax.images) == 0
    assert all(ax.collections for ax in outlined.axes if ax.images)


def test_group_montage_one_row_per_group_on_one_scale(tmp_path):
    rng = np.random.default_rng(1)
    groups = {label: (rng.random(GRID.shape) * scale, rng.normal(size=GRID.shape), n)
              for label, scale, n in (("0-5", 1.0, 4), ("6-10", 3.0, 2))}  # fmt: skip
    fig = montage._group_figure(groups, GRID.affine, "groups")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 6
    limits = {ax.images[1].get_clim() for ax in images}
    assert len(limits) == 1  # one colour scale for every group
    labels = [text.get_text() for ax in images[::3] for text in ax.texts if "n=" in text.get_text()]
    assert labels == ["0-5 y\nn=4", "6-10 y\nn=2"]
    with pytest.raises(ValueError, match="no age group"):
        montage.group_montage({}, GRID.affine, tmp_path / "g.png", "none")


def test_panels_go_through_the_strongest_planes_spaced_apart():
    magnitude = np.ones(GRID.shape)
    magnitude[:, :, 10], magnitude[:, :, 11] = 50.0, 45.0  # one bright band two slices thick
    magnitude[:, :, 3], magnitude[:, :, 17] = 20.0, 10.0
    assert montage._peak_planes(magnitude, 2, 3) == [3, 10, 17]  # 11 is too close to 10 to get a panel
    assert montage._peak_planes(magnitude, 2, 1) == [10]
