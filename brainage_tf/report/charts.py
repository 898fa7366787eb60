"""The report's two charts, as PNG bytes: the normative chart and a subject's gap trajectory.

Both draw the centile bands of the export's normative model (`brainage_tf.evaluation.normative`):
the bias-corrected gap at age a is normal with mean m(a) and SD s(a), so its centile p lies at
m(a) + z_p s(a). The normative chart draws them as bias-corrected predicted ages,
a + m(a) + z_p s(a), the trajectory as gaps. Centiles 3, 10, 25, 50, 75, 90 and 97, as on
paediatric growth charts. Outside the ages the norms were fitted on they stay at their value at
the nearest end (the model's rule); dotted lines mark those ends.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from scipy.special import ndtri

from brainage_tf.evaluation.normative import GapNorms
from brainage_tf.evaluation.plots import STYLE

CENTILES = (3, 10, 25, 50, 75, 90, 97)
_BAND_ALPHAS = (0.15, 0.25, 0.35)  # 3-97, 10-90, 25-75
_BAND_COLOUR = "tab:blue"
_SUBJECT_COLOUR = "tab:red"
_DPI = 100

Point = tuple[float, float]


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=_DPI, format="png")
    return buffer.getvalue()


def _ages_axis(norms: GapNorms | None, ages: Sequence[float]) -> np.ndarray:
    """Ages to draw the bands over: the fitted range and every age on the chart."""
    ends = [*ages, *(norms.age_range if norms is not None else ())]
    low, high = min(ends), max(ends)
    margin = max(0.5, 0.05 * (high - low))
    return np.linspace(max(0.0, low - margin), high + margin, 200)


def _bands(ax, norms: GapNorms, ages: np.ndarray, offset: np.ndarray) -> None:
    """Centile bands of the gap, shifted by `offset` (the ages, to draw predicted ages; 0 for gaps)."""
    mean, sd = norms.mean(ages), norms.sd(ages)
    at = {p: offset + mean + float(ndtri(p / 100.0)) * sd for p in CENTILES}
    for (low, high), alpha in zip(
        zip(CENTILES[:3], CENTILES[::-1][:3], strict=True), _BAND_ALPHAS, strict=True
    ):
        ax.fill_between(ages, at[low], at[high], color=_BAND_COLOUR, alpha=alpha, lw=0,
                        label=f"centiles {low}-{high}")  # fmt: skip
    ax.plot(ages, at[50], color=_BAND_COLOUR, lw=1.2, label="centile 50")
    for number, end in enumerate(norms.age_range):
        ax.axvline(end, color="grey", lw=0.8, ls=":", label=None if number else "ages fitted on")


def normative_chart(
    norms: GapNorms | None, cohort: Sequence[Point], subject: Sequence[Point], current: Point
) -> bytes:
    """Predicted against chronological age: the centile bands, the run's scans, this subject's.

    Args:
        norms: The export's normative model; None draws the identity line alone.
        cohort: (age, predicted age) of every scan of the run with a known age, in grey.
        subject: (age, predicted age) of this subject's scans, joined by a line.
        current: (age, predicted age) of this page's scan, marked.
    The predicted ages are bias-corrected when there are norms (the ages the centiles describe).
    """
    ages = _ages_axis(norms, [age for age, _ in (*cohort, current)])
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(5.2, 4.4), layout="constrained")
        ax = fig.subplots()
        if norms is not None:
            _bands(ax, norms, ages, ages)
        ax.plot(ages, ages, color="black", lw=0.8, ls="--", label="predicted = age")
        if cohort:
            ax.scatter(*zip(*cohort, strict=True), s=10, color="grey", alpha=0.6, label="scans of this run")
        if len(subject) > 1:
            ax.plot(*zip(*sorted(subject), strict=True), color=_SUBJECT_COLOUR, lw=1, alpha=0.7)
        ax.scatter([current[0]], [current[1]], s=60, color=_SUBJECT_COLOUR, edgecolor="black", zorder=5,
                   label="this scan")  # fmt: skip
        ax.set_xlabel("chronological age (years)")
        ax.set_ylabel(
            "bias-corrected predicted age (years)" if norms is not None else "predicted age (years)"
        )
        ax.set_title("normative chart" if norms is not None else "no normative centiles in this export")
        ax.legend(loc="lower right", fontsize=8)
        return _png(fig)


def trajectory_chart(norms: GapNorms | None, points: Sequence[Point], current: Point, gap_name: str) -> bytes:
    """One subject's gap at each of its scans, over the gap's centile bands when there are norms.

    Args:
        norms: The export's normative model, or None.
        points: (age, gap) of each of the subject's scans.
        current: (age, gap) of this page's scan, marked.
        gap_name: What the gap is, for the axis ("bias-corrected brain-age gap").
    """
    ages = _ages_axis(norms, [age for age, _ in points])
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(5.2, 4.4), layout="constrained")
        ax = fig.subplots()
        if norms is not None:
            _bands(ax, norms, ages, np.zeros_like(ages))
        ax.axhline(0.0, color="black", lw=0.8, ls="--")
        ax.plot(*zip(*sorted(points), strict=True), color=_SUBJECT_COLOUR, marker="o", lw=1.2,
                label="this subject")  # fmt: skip
        ax.scatter([current[0]], [current[1]], s=60, color=_SUBJECT_COLOUR, edgecolor="black", zorder=5,
                   label="this scan")  # fmt: skip
        ax.set_xlabel("chronological age (years)")
        ax.set_ylabel(f"{gap_name} (years)")
        ax.set_title("gap trajectory")
        fig.legend(loc="outside lower center", ncols=3, fontsize=8)
        return _png(fig)
