"""Slab occlusion: how much the predicted age moves when one slab of slices is hidden.

slice_lstm averages every `pool_size` consecutive slices along its slicing axis
(AveragePooling1D(k, strides=k)) before the LSTM reads them, so its unit of
sequence is the pooled slab. Each slab in turn is occluded, replaced by its own
mean intensity, which keeps the volume's intensity level while removing the
slab's anatomy, and the change in predicted age is recorded. The resnet3d
baseline is occluded over the same slabs along the same axis, so the two models'
profiles can be set side by side. Trailing slices that fill no window are not
part of any slab (slice_lstm never sees them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from brainage_tf.defaults import SLICE_AXIS_INDEX
from brainage_tf.evaluation.plots import STYLE, save_figure
from brainage_tf.explanation.saliency import AgeFunction

COLUMNS = (
    "slab",
    "first_slice",
    "last_slice",
    "from_mm",
    "to_mm",
    "predicted_age",
    "occluded_age",
    "age_change",
    "importance",
)
# World axis names of the RAS+ grid, for labels.
_AXIS_WORDS = {
    "sagittal": "x (left to right)",
    "coronal": "y (posterior to anterior)",
    "axial": "z (inferior to superior)",
}


def pooled_slabs(num_slices: int, pool_size: int) -> list[tuple[int, int]]:
    """[start, stop) slice ranges of the pooling windows: AveragePooling1D(k, strides=k), valid padding.

    Example:
        >>> pooled_slabs(10, 4)
        [(0, 4), (4, 8)]
    """
    if not 1 <= pool_size <= num_slices:
        raise ValueError(f"pool size must be between 1 and the {num_slices} slices, got {pool_size}")
    return [(start, start + pool_size) for start in range(0, num_slices - pool_size + 1, pool_size)]


def occlude(volume: np.ndarray, axis: int, slabs: Sequence[tuple[int, int]]) -> np.ndarray:
    """A copy of `volume` with every slab [start, stop) along `axis` replaced by its own mean."""
    occluded = np.array(volume, np.float32, copy=True)
    for start, stop in slabs:
        index = [slice(None)] * occluded.ndim
        index[axis] = slice(start, stop)
        occluded[tuple(index)] = occluded[tuple(index)].mean()
    return occluded


def predict_ages(age_fn: AgeFunction, volumes: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Predicted ages of volumes [n, x, y, z], `batch_size` at a time."""
    import tensorflow as tf

    parts = [
        np.asarray(age_fn(tf.constant(volumes[start : start + batch_size], tf.float32)), np.float64)
        for start in range(0, len(volumes), batch_size)
    ]
    return np.concatenate(parts)


def slab_importance(
    age_fn: AgeFunction,
    volume: np.ndarray,
    slice_axis: str,
    pool_size: int,
    affine: np.ndarray,
    batch_size: int = 8,
) -> pd.DataFrame:
    """One row per pooled slab: the predicted age with that slab occluded and the change it makes.

    Args:
        age_fn: The model's age function.
        volume: A preprocessed volume (x, y, z).
        slice_axis: "axial", "coronal" or "sagittal": the axis the slabs step along.
        pool_size: Slices per slab.
        affine: Voxel-to-MNI affine of the grid, for the slabs' millimetre ranges.
        batch_size: Volumes per model call.

    Returns:
        A DataFrame with `COLUMNS`: `age_change` is occluded minus unoccluded age,
        `importance` its absolute value; `from_mm`/`to_mm` are the outer faces of the slab.
    """
    axis = SLICE_AXIS_INDEX[slice_axis]
    slabs = pooled_slabs(volume.shape[axis], pool_size)
    volumes = np.stack([volume, *(occlude(volume, axis, [slab]) for slab in slabs)])
    ages = predict_ages(age_fn, volumes, batch_size)
    step, origin = float(affine[axis, axis]), float(affine[axis, 3])
    table = pd.DataFrame({
        "slab": np.arange(len(slabs)),
        "first_slice": [start for start, _ in slabs],
        "last_slice": [stop - 1 for _, stop in slabs],
        "from_mm": [origin + (start - 0.5) * step for start, _ in slabs],
        "to_mm": [origin + (stop - 0.5) * step for _, stop in slabs],
        "predicted_age": ages[0],
        "occluded_age": ages[1:],
    })  # fmt: skip
    table["age_change"] = table["occluded_age"] - table["predicted_age"]
    table["importance"] = table["age_change"].abs()
    return table[list(COLUMNS)]


def plot_slab_importance(table: pd.DataFrame, slice_axis: str, path: str | os.PathLike, title: str) -> Path:
    """Horizontal bars of the age change per slab, slabs stacked along their axis; writes a PNG.

    Args:
        table: The output of `slab_importance`.
        slice_axis: The slabs' axis, named on the vertical axis.
        path: PNG file to write.
        title: Figure title.

    Returns:
        `path` as a `Path`.
    """
    return save_figure(_slab_figure(table, slice_axis, title), path)


def _slab_figure(table: pd.DataFrame, slice_axis: str, title: str) -> Figure:
    """The bar figure: one bar per slab at its position in mm, red raises the age, blue lowers it."""
    centres = ((table["from_mm"] + table["to_mm"]) / 2.0).to_numpy()
    height = 0.8 * float(np.abs(table["to_mm"] - table["from_mm"]).iloc[0])
    change = table["age_change"].to_numpy()
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6.4, 0.9 + 0.28 * len(table) + 1.2), layout="constrained")
        ax = fig.subplots()
        for raises, colour, label in (
            (True, "tab:red", "occluding raises the age"),
            (False, "tab:blue", "lowers it"),
        ):
            chosen = (change >= 0) == raises
            ax.barh(centres[chosen], change[chosen], height=height, color=colour, label=label)
        ax.axvline(0.0, color="grey", linewidth=1)
        ax.set_yticks(
            centres, [f"{row.slab}: {row.from_mm:.0f} to {row.to_mm:.0f}" for row in table.itertuples()]
        )
        ax.set(
            xlabel="change in predicted age when the slab is occluded (years)",
            ylabel=f"slab: {_AXIS_WORDS[slice_axis]} mm",
            title=f"{title}\npredicted age {table['predicted_age'].iloc[0]:.2f} y",
        )
        ax.grid(True, axis="x", alpha=0.4)
        fig.legend(loc="outside lower center", ncols=2)
    return fig
