"""Figures of one evaluation: CS curves, predicted against true age, error per age group, brain-age gap,
and each subject's gap over its visits.

Each public function writes one PNG and returns its path; a private `_..._figure`
helper builds the figure so tests can inspect it. Non-finite predictions are
left out of the figures only (the metrics count them as `n_nonfinite`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from brainage_tf.evaluation.metrics import age_group_index

DPI = 120
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9}
_RAW, _CORRECTED = "tab:blue", "tab:orange"


def plot_cs_curves(curves: Mapping[str, Mapping], path: str | os.PathLike, title: str) -> Path:
    """Plots the cumulative score against the error level, one line per model (the paper's Fig. 4-5).

    Args:
      curves: Model name -> the `"cs"` dict of its metrics, `{"alpha": [...], "percent": [...]}`.
      path: PNG file to write; missing folders are created.
      title: Figure title.

    Returns:
      `path` as a `Path`.
    """
    return save_figure(_cs_figure(curves, title), path)


def plot_predicted_vs_age(
    ages: Sequence[float],
    predicted: Sequence[float],
    path: str | os.PathLike,
    title: str,
    corrected: Sequence[float] | None = None,
) -> Path:
    """Scatters predicted against chronological age around the identity line, MAE in the legend.

    Args:
      ages: Chronological age per subject, in years.
      predicted: Predicted age per subject, in years; non-finite values are not drawn.
      path: PNG file to write; missing folders are created.
      title: Figure title.
      corrected: Bias-corrected predictions of the same subjects, drawn as a second series.

    Returns:
      `path` as a `Path`.
    """
    return save_figure(_predicted_figure(ages, predicted, title, corrected), path)


def plot_error_by_age_group(
    ages: Sequence[float],
    predicted: Sequence[float],
    edges: Sequence[float],
    labels: Sequence[str],
    path: str | os.PathLike,
    title: str,
) -> Path:
    """Box plot of the absolute error per age group, each subject as a dot and the group MAE marked.

    Group i holds the ages in [edges[i], edges[i+1]), the last group closed, as in
    `metrics.age_group_index`; its tick label carries its subject count, and an
    empty group stays an empty slot.

    Args:
      ages: Chronological age per subject, in years.
      predicted: Predicted age per subject, in years; non-finite values are not drawn.
      edges: Increasing group boundaries in years, one more than `labels`.
      labels: Group labels, e.g. "0-5".
      path: PNG file to write; missing folders are created.
      title: Figure title.

    Returns:
      `path` as a `Path`.

    Raises:
      ValueError: `edges` is not one longer than `labels`.
    """
    return save_figure(_error_figure(ages, predicted, edges, labels, title), path)


def plot_gap_vs_age(
    ages: Sequence[float],
    gap: Sequence[float],
    path: str | os.PathLike,
    title: str,
    corrected_gap: Sequence[float] | None = None,
) -> Path:
    """Scatters the brain-age gap (predicted - age) against age with a zero line and a linear trend.

    Args:
      ages: Chronological age per subject, in years.
      gap: Predicted minus chronological age, in years; non-finite values are not drawn.
      path: PNG file to write; missing folders are created.
      title: Figure title.
      corrected_gap: The gap after bias correction, drawn in a second colour with its own trend.

    Returns:
      `path` as a `Path`.
    """
    return save_figure(_gap_figure(ages, gap, title, corrected_gap), path)


def plot_gap_trajectories(
    subject_ids: Sequence[str],
    ages: Sequence[float],
    gap: Sequence[float],
    path: str | os.PathLike,
    title: str,
    tempo: Sequence[float] | None = None,
    gap_name: str = "brain-age gap",
) -> Path:
    """Draws each subject's gap against age, one line through its visits, for subjects scanned twice or more.

    A trait-like gap gives flat lines spread apart; noise gives zigzags around zero.

    Args:
      subject_ids: Subject of each scan.
      ages: Chronological age per scan, in years.
      gap: The gap per scan (predicted or bias-corrected minus age); non-finite scans are not drawn.
      path: PNG file to write; missing folders are created.
      title: Figure title.
      tempo: The subjects' true developmental tempo per scan (NaN where unknown): colours the lines,
        so a gap that measures development orders them by colour.
      gap_name: Which gap is drawn, for the y axis (e.g. "bias-corrected gap").

    Returns:
      `path` as a `Path`.
    """
    return save_figure(_trajectory_figure(subject_ids, ages, gap, title, tempo, gap_name), path)


def _trajectory_figure(subject_ids, ages, gap, title: str, tempo, gap_name: str = "brain-age gap") -> Figure:
    """One line per subject with two or more finite scans, coloured by tempo when every drawn one has it."""
    ids = np.asarray(subject_ids, dtype=str)
    x, y = np.asarray(ages, dtype=float), np.asarray(gap, dtype=float)
    colour_by = np.full(x.shape, np.nan) if tempo is None else np.asarray(tempo, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    lines = []
    for subject in dict.fromkeys(ids[keep]):
        rows = np.flatnonzero(keep & (ids == subject))
        if rows.size >= 2:
            rows = rows[np.argsort(x[rows], kind="stable")]
            lines.append((x[rows], y[rows], colour_by[rows[0]]))
    coloured = bool(lines) and all(np.isfinite(line[2]) for line in lines)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.2, 4.8), layout="constrained")
        ax = fig.subplots()
        ax.axhline(0.0, color="grey", linewidth=1)
        if coloured:
            values = np.array([line[2] for line in lines])
            norm = matplotlib.colors.Normalize(values.min(), values.max() + 1e-9)
            cmap = matplotlib.colormaps["coolwarm"]
        for line_x, line_y, value in lines:
            colour = cmap(norm(value)) if coloured else _RAW
            ax.plot(line_x, line_y, marker="o", markersize=3, linewidth=1.2, alpha=0.8, color=colour)
        if coloured:
            bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
            bar.set_label("true developmental tempo")
        ax.set(xlabel="chronological age (years)", ylabel=f"{gap_name} (years)")
        ax.set_title(f"{title}\n{len(lines)} subjects with two or more scans")
        ax.grid(True, alpha=0.4)
    return fig


def _cs_figure(curves: Mapping[str, Mapping], title: str) -> Figure:
    """The CS figure: one line per model, y from 0 to 100 %."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6.4, 4.8), layout="constrained")
        ax = fig.subplots()
        for index, (name, cs) in enumerate(curves.items()):
            # Marker and dash vary too, so curves stay apart in greyscale prints.
            ax.plot(
                cs["alpha"],
                cs["percent"],
                marker="os^Dv"[index % 5],
                markersize=3,
                linestyle=("-", "--", "-.", ":")[index % 4],
                label=name,
                clip_on=False,  # markers at 0 % and 100 % sit on the frame; draw them whole
            )
        ax.set(xlabel="error level α (years)", ylabel="CS (%)", ylim=(0, 100), title=title)
        ax.grid(True, alpha=0.4)
        ax.legend(loc="lower right")
    return fig


def _predicted_figure(
    ages: Sequence[float], predicted: Sequence[float], title: str, corrected: Sequence[float] | None
) -> Figure:
    """The predicted-against-age scatter on equal axes, one series per prediction set."""
    series = [("predicted", predicted, _RAW, "o")]
    if corrected is not None:
        series.append(("bias-corrected", corrected, _CORRECTED, "^"))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(5.6, 5.6), layout="constrained")
        ax = fig.subplots()
        shown = [np.asarray(ages, dtype=float)]
        for name, values, colour, marker in series:
            x, y = _finite(ages, values)
            mae = f"{np.mean(np.abs(y - x)):.2f} y" if y.size else "–"
            label = f"{name}: MAE {mae}, n={y.size}"
            ax.scatter(x, y, s=22, alpha=0.7, color=colour, marker=marker, label=label)
            shown.append(y)
        everything = np.concatenate(shown)
        low, high = np.nanmin(everything), np.nanmax(everything)
        pad = 0.05 * (high - low) + 0.5
        limits = (low - pad, high + pad)
        ax.plot(limits, limits, color="grey", linewidth=1, linestyle="--", label="identity")
        ax.set(xlim=limits, ylim=limits, aspect="equal", title=title)
        ax.set(xlabel="chronological age (years)", ylabel="predicted age (years)")
        ax.grid(True, alpha=0.4)
        ax.legend(loc="upper left")
    return fig


def _error_figure(
    ages: Sequence[float],
    predicted: Sequence[float],
    edges: Sequence[float],
    labels: Sequence[str],
    title: str,
) -> Figure:
    """The absolute-error box plot per age group, with dots, group MAE and n per group."""
    if len(edges) != len(labels) + 1:
        raise ValueError(f"{len(edges)} edges for {len(labels)} age groups; need one more edge than groups")
    x, y = _finite(ages, predicted)
    errors = np.abs(y - x)
    index = age_group_index(x, edges)
    groups = [errors[index == i] for i in range(len(labels))]
    outside = errors.size - sum(group.size for group in groups)
    positions = np.arange(len(groups))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.2, 4.8), layout="constrained")
        ax = fig.subplots()
        # Black medians: orange marks bias-corrected series in the other figures.
        boxes = ax.boxplot(
            groups, positions=positions, widths=0.5, showfliers=False, medianprops={"color": "black"}
        )
        boxes["medians"][0].set_label("median; box: quartiles")
        jitter = np.random.default_rng(0)  # fixed seed: the same data always gives the same picture
        for position, group in zip(positions, groups, strict=True):
            offsets = jitter.uniform(-0.12, 0.12, group.size)
            ax.scatter(position + offsets, group, s=12, alpha=0.6, color=_RAW)
        filled = [index for index, group in enumerate(groups) if group.size]
        means = [groups[index].mean() for index in filled]
        ax.scatter(filled, means, marker="D", s=45, color="tab:red", zorder=3, label="group MAE")
        ax.set_xticks(
            positions, [f"{label}\nn={group.size}" for label, group in zip(labels, groups, strict=True)]
        )
        ax.set_xlim(-0.6, len(groups) - 0.4)
        note = f" ({outside} outside the groups)" if outside else ""
        ax.set(xlabel=f"age group (years){note}", ylabel="absolute error (years)", title=title)
        ax.set_ylim(bottom=0)
        ax.grid(True, axis="y", alpha=0.4)
        # Below the axes, so no group's dots hide behind it.
        fig.legend(loc="outside lower center", ncols=2)
    return fig


def _gap_figure(
    ages: Sequence[float], gap: Sequence[float], title: str, corrected_gap: Sequence[float] | None
) -> Figure:
    """The gap-against-age scatter with a zero line and each series' least-squares trend."""
    series = [("gap", gap, _RAW, "o")]
    if corrected_gap is not None:
        series.append(("bias-corrected gap", corrected_gap, _CORRECTED, "^"))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.2, 4.8), layout="constrained")
        ax = fig.subplots()
        ax.axhline(0.0, color="grey", linewidth=1)
        for name, values, colour, marker in series:
            x, y = _finite(ages, values)
            label = f"{name} (n={y.size})"
            # A trend needs two distinct ages; otherwise the series is drawn without one.
            if np.unique(x).size >= 2:
                slope, intercept = np.polyfit(x, y, 1)
                ends = np.array([x.min(), x.max()])
                ax.plot(ends, intercept + slope * ends, color=colour, linewidth=2)
                # Rounding first shows a flat corrected trend as +0.00, not -0.00.
                label = f"{name}: trend {round(slope, 2) + 0.0:+.2f} y per year (n={y.size})"
            ax.scatter(x, y, s=22, alpha=0.7, color=colour, marker=marker, label=label)
        ax.set(
            xlabel="chronological age (years)", ylabel="brain-age gap, predicted - age (years)", title=title
        )
        ax.grid(True, alpha=0.4)
        # Below the axes: a scatter spread over the whole plot may leave no free corner.
        fig.legend(loc="outside lower center")
    return fig


def _finite(ages: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Ages and values of the subjects whose age and value are both finite."""
    x, y = np.asarray(ages, dtype=float), np.asarray(values, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"{x.size} ages but {y.size} values")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Writes `fig` as a PNG at `path` (creating folders) and returns the path.

    Figures are built without pyplot, so they draw with Agg (no display needed) and
    leave the caller's pyplot backend, a notebook's say, alone.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path
