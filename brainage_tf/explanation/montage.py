"""PNG montages of saliency over brains: one scan's three views, and age groups side by side.

Views follow the neurological convention on the RAS+ grid: the subject's left on
the image's left, superior and anterior up or right. Panels cut through the planes
where the map is strongest (its peaks, spaced apart). The saliency is shown as its
normalised magnitude (1 = the map's mean), smoothed for display with a Gaussian of
one voxel (voxel gradients of strided convolutions alternate from voxel to voxel),
and drawn only above its 90th percentile so the anatomy underneath stays visible;
the colour scale is printed on each figure. The NIfTI maps are never smoothed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import scipy.ndimage
from matplotlib.figure import Figure

from brainage_tf.evaluation.plots import STYLE, save_figure
from brainage_tf.explanation.saliency import normalised_magnitude

# (name, voxel axis cut, horizontal axis, vertical axis, world letter, (left, right) labels)
VIEWS = (
    ("axial", 2, 0, 1, "z", ("L", "R")),
    ("coronal", 1, 0, 2, "y", ("L", "R")),
    ("sagittal", 0, 1, 2, "x", ("P", "A")),
)
SLICES_PER_VIEW = 4
DISPLAY_SMOOTHING_VOXELS = 1.0
OVERLAY_PERCENTILE = 90.0
COLOUR_PERCENTILE = 99.5
# Outline of the brain mask a scan was skull-stripped with (here and in predict's report montage).
MASK_OUTLINE_RGB = (0, 200, 255)
# "hot" without its black-to-dark-red start: a value just above the threshold must not look like no value.
_CMAP = matplotlib.colors.ListedColormap(
    matplotlib.colormaps["hot"](np.linspace(0.3, 1.0, 256)), name="hot_bright"
)


def cut_plane(volume: np.ndarray, axis: int, index: int, horizontal: int, vertical: int) -> np.ndarray:
    """The 2D slice at `index` along `axis`, rows vertical (bottom first), columns horizontal."""
    plane = np.take(volume, index, axis=axis)
    kept = [a for a in range(3) if a != axis]
    return plane if kept.index(vertical) == 0 and kept.index(horizontal) == 1 else plane.T


def _panel(ax, background, overlay, view, index, scale, affine, brain_mask=None) -> object:
    """Draws one slice in grey with the overlay above its threshold (and the brain mask's outline when
    given); returns the overlay image."""
    name, axis, horizontal, vertical, letter, (left, right) = view
    grey = cut_plane(background, axis, index, horizontal, vertical)
    low, high = np.percentile(background, [1, 99])
    ax.imshow(grey, cmap="gray", origin="lower", vmin=low, vmax=high, interpolation="nearest")
    heat = cut_plane(overlay, axis, index, horizontal, vertical)
    threshold, top = scale
    shown = np.ma.masked_less(heat, threshold)
    image = ax.imshow(
        shown, cmap=_CMAP, origin="lower", vmin=threshold, vmax=top, alpha=0.85, interpolation="nearest"
    )
    if brain_mask is not None:
        outline = cut_plane(brain_mask, axis, index, horizontal, vertical).astype(np.float32)
        if outline.any():
            colour = tuple(c / 255 for c in MASK_OUTLINE_RGB)
            ax.contour(outline, levels=[0.5], colors=[colour], linewidths=0.6, origin="lower")
    millimetres = round(float(affine[axis, axis] * index + affine[axis, 3]))  # an int: never "-0"
    ax.set_title(f"{name} {letter}={millimetres} mm", fontsize=9)
    ax.text(0.02, 0.02, left, transform=ax.transAxes, color="white", fontsize=8, va="bottom")
    ax.text(0.98, 0.02, right, transform=ax.transAxes, color="white", fontsize=8, ha="right", va="bottom")
    ax.set_axis_off()
    return image


def _smoothed(magnitude: np.ndarray) -> np.ndarray:
    return scipy.ndimage.gaussian_filter(np.asarray(magnitude, np.float32), DISPLAY_SMOOTHING_VOXELS)


def _peak_planes(magnitude: np.ndarray, axis: int, count: int, threshold: float = 0.0) -> list[int]:
    """The `count` planes along `axis` with the most saliency, a tenth of the axis apart, in order.

    Where the map is strongest is what a reader looks for; the spacing keeps one
    bright band from filling every panel. Only values at or above `threshold`, the
    ones drawn, count.
    """
    shown = np.where(magnitude >= threshold, magnitude, 0.0)
    profile = shown.sum(axis=tuple(a for a in range(3) if a != axis))
    gap = max(1, magnitude.shape[axis] // 10)
    chosen: list[int] = []
    for index in np.argsort(profile)[::-1]:
        if all(abs(int(index) - other) >= gap for other in chosen):
            chosen.append(int(index))
        if len(chosen) == count:
            break
    return sorted(chosen)


def _scale(magnitudes: Sequence[np.ndarray]) -> tuple[float, float]:
    """(overlay threshold, colour maximum) shared by all panels of a figure."""
    values = np.concatenate([np.ravel(m) for m in magnitudes])
    threshold, top = np.percentile(values, [OVERLAY_PERCENTILE, COLOUR_PERCENTILE])
    return float(threshold), float(max(top, threshold * 1.01, 1e-6))


def scan_montage(
    volume: np.ndarray,
    saliency: np.ndarray,
    affine: np.ndarray,
    path: str | os.PathLike,
    title: str,
    brain_mask: np.ndarray | None = None,
) -> Path:
    """Writes a 3 x 4 montage: axial, coronal, sagittal rows through the map's strongest planes.

    Args:
        volume: The preprocessed scan (x, y, z) on the model grid.
        saliency: Its signed saliency map, same shape.
        affine: The grid's voxel-to-MNI affine (slice positions in mm).
        path: PNG file to write.
        title: Figure title (scan, model, predicted age).
        brain_mask: The mask the scan was skull-stripped with, on the grid (outlined), or None.

    Returns:
        `path` as a `Path`.
    """
    return save_figure(_scan_figure(volume, saliency, affine, title, brain_mask), path)


def _scan_figure(volume, saliency, affine, title, brain_mask=None) -> Figure:
    magnitude = _smoothed(normalised_magnitude(saliency))
    scale = _scale([magnitude])
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(2.2 * SLICES_PER_VIEW + 1.0, 2.35 * len(VIEWS) + 0.6), layout="constrained")
        axes = fig.subplots(len(VIEWS), SLICES_PER_VIEW, squeeze=False)
        for row, view in zip(axes, VIEWS, strict=True):
            for ax, index in zip(
                row, _peak_planes(magnitude, view[1], SLICES_PER_VIEW, scale[0]), strict=True
            ):
                image = _panel(ax, volume, magnitude, view, index, scale, affine, brain_mask)
        bar = fig.colorbar(image, ax=axes, shrink=0.6, location="right")
        bar.set_label("|saliency| / its mean, smoothed (top 10 % shown)")
        fig.suptitle(title)
    return fig


def group_montage(
    groups: Mapping[str, tuple[np.ndarray, np.ndarray, int]],
    affine: np.ndarray,
    path: str | os.PathLike,
    title: str,
) -> Path:
    """Writes one row per age group: its mean normalised saliency over its mean scan, three views.

    Args:
        groups: Group label -> (mean normalised saliency, mean preprocessed scan, number of scans);
            groups with no scan are left out by the caller.
        affine: The grid's voxel-to-MNI affine.
        path: PNG file to write.
        title: Figure title.

    Returns:
        `path` as a `Path`.

    Raises:
        ValueError: No group.
    """
    if not groups:
        raise ValueError("no age group holds a scan: nothing to draw")
    return save_figure(_group_figure(groups, affine, title), path)


def _group_figure(groups, affine, title) -> Figure:
    shown = {
        label: (_smoothed(magnitude), background, n) for label, (magnitude, background, n) in groups.items()
    }
    # One colour scale and one slice per view for all groups, so the rows compare directly.
    scale = _scale([magnitude for magnitude, _, _ in shown.values()])
    pooled = sum(magnitude for magnitude, _, _ in shown.values()) / len(shown)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(2.3 * len(VIEWS) + 1.4, 2.3 * len(groups) + 0.6), layout="constrained")
        axes = fig.subplots(len(groups), len(VIEWS), squeeze=False)
        for row, (label, (magnitude, background, count)) in zip(axes, shown.items(), strict=True):
            for ax, view in zip(row, VIEWS, strict=True):
                (index,) = _peak_planes(pooled, view[1], 1, scale[0])
                image = _panel(ax, background, magnitude, view, index, scale, affine)
            row[0].text(-0.08, 0.5, f"{label} y\nn={count}", transform=row[0].transAxes, rotation=90,
                        ha="right", va="center", fontsize=11)  # fmt: skip
        bar = fig.colorbar(image, ax=axes, shrink=0.6, location="right")
        bar.set_label("mean normalised |saliency|, smoothed (top 10 % shown)")
        fig.suptitle(f"{title}\nslices through the peak of all groups together")
    return fig
