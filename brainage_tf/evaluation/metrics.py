"""The paper's evaluation figures: MAE per age group, the overall MAE and the cumulative score.

He et al. (ISBI 2020, section 3) report the mean absolute error (MAE) in age groups
(Table 1: 0-5, 6-10, 11-15 and 16-22 years; Tables 2-3: one-year bins from 0 to 6
years) next to an "Average" column, and the cumulative score

    CS(alpha) = 100 * #{subjects with |predicted - age| <= alpha} / N

as a curve over the error level alpha (Figs. 4-5). Only numpy and the age bounds of
`brainage_tf.defaults` are imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from brainage_tf.defaults import MAX_AGE_YEARS, MIN_AGE_YEARS, YOUNG_MAX_AGE_YEARS

# Table 1: [0, 6), [6, 11), [11, 16), [16, 22] years, labelled 0-5, 6-10, 11-15, 16-22.
PAPER_AGE_EDGES = (MIN_AGE_YEARS, YOUNG_MAX_AGE_YEARS, 11.0, 16.0, MAX_AGE_YEARS)
# Tables 2-3: one-year bins [0, 1), ..., [5, 6], labelled 0-1, ..., 5-6.
YOUNG_AGE_EDGES = tuple(float(year) for year in range(int(MIN_AGE_YEARS), int(YOUNG_MAX_AGE_YEARS) + 1))

# The error levels of the CS curves: 0 to 10 years in quarter-year steps.
CS_ALPHA_STEP = 0.25
CS_MAX_ALPHA = 10.0


def _checked_edges(edges: Sequence[float]) -> np.ndarray:
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or not np.isfinite(edges).all() or np.any(np.diff(edges) <= 0):
        raise ValueError(f"age edges must be at least two finite, increasing numbers, got {edges.tolist()}")
    return edges


def default_age_edges(max_age: float) -> tuple[float, ...]:
    """The paper's age groups for a cohort whose oldest subject is ``max_age`` years.

    Args:
        max_age: Age of the oldest subject, in years.

    Returns:
        YOUNG_AGE_EDGES (one-year bins, Tables 2-3) when ``max_age <= 6``, else
        PAPER_AGE_EDGES (Table 1).

    Example:
        >>> default_age_edges(5.5)
        (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    """
    return YOUNG_AGE_EDGES if max_age <= YOUNG_AGE_EDGES[-1] else PAPER_AGE_EDGES


def age_group_labels(edges: Sequence[float]) -> list[str]:
    """The paper's label of each age bin.

    When every bin is one year wide, a bin is labelled by its edges ("0-1", ...,
    "5-6"). Otherwise, when every edge is a whole year, a bin is labelled by the
    whole years it holds ("0-5" for [0, 6)) except the closed last bin, which keeps
    its edges ("16-22"). Other bins (fractional edges) are labelled by their edges,
    since "a-(b-1)" would name ages outside the bin.

    Args:
        edges: Increasing bin edges in years.

    Returns:
        One label per bin.

    Example:
        >>> age_group_labels(PAPER_AGE_EDGES)
        ['0-5', '6-10', '11-15', '16-22']
    """
    edges = _checked_edges(edges)
    whole_years = bool(np.all(edges == np.round(edges))) and not np.all(np.diff(edges) == 1.0)
    last = edges.size - 2
    return [
        f"{low:g}-{high - 1:g}" if whole_years and i < last else f"{low:g}-{high:g}"
        for i, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    ]


def age_group_index(ages: Sequence[float] | np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Age bin of each subject: i when ``edges[i] <= age < edges[i + 1]``.

    The last bin is closed, so an age equal to ``edges[-1]`` belongs to it (22.0 is
    in 16-22). Ages outside ``[edges[0], edges[-1]]`` (and NaN) get -1.

    Args:
        ages: Ages in years.
        edges: Increasing bin edges in years.

    Returns:
        Integer array of bin indices, the shape of ``ages``.

    Example:
        >>> age_group_index([0.0, 6.0, 22.0, 22.5], PAPER_AGE_EDGES).tolist()
        [0, 1, 3, -1]
    """
    edges = _checked_edges(edges)
    ages = np.asarray(ages, dtype=float)
    index = np.minimum(np.searchsorted(edges, ages, side="right") - 1, edges.size - 2)
    inside = (ages >= edges[0]) & (ages <= edges[-1])
    return np.where(inside, index, -1)


def cs_alphas(max_alpha: float = CS_MAX_ALPHA, step: float = CS_ALPHA_STEP) -> np.ndarray:
    """Error levels 0, step, 2*step, ..., max_alpha (inclusive) for the cumulative score.

    Built as integer multiples of ``step``, so no rounding error accumulates and the
    last level is ``max_alpha`` itself.

    Args:
        max_alpha: Largest error level in years; a multiple of ``step``.
        step: Spacing of the levels in years.

    Returns:
        Float array of ``max_alpha / step + 1`` levels.

    Example:
        >>> cs_alphas(1.0).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if step <= 0 or max_alpha < 0:
        raise ValueError(f"need step > 0 and max_alpha >= 0, got step={step}, max_alpha={max_alpha}")
    count = round(max_alpha / step)
    if not np.isclose(count * step, max_alpha):
        raise ValueError(f"max_alpha={max_alpha} is not a multiple of step={step}")
    return np.arange(count + 1) * step


def cumulative_score(abs_errors: Sequence[float] | np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """Percent of subjects whose absolute error is at most each alpha (the paper's eq. 5).

    The comparison is inclusive: an error of exactly 0.25 counts at alpha = 0.25.

    Args:
        abs_errors: Absolute prediction errors in years (a sign is ignored; NaN never counts).
        alphas: Error levels in years.

    Returns:
        Float array of percentages (0-100), one per alpha.

    Raises:
        ValueError: When ``abs_errors`` is empty.

    Example:
        >>> cumulative_score([0.0, 0.25, 0.5, 1.0], [0.0, 0.25, 0.5]).tolist()
        [25.0, 50.0, 75.0]
    """
    errors = np.sort(np.abs(np.asarray(abs_errors, dtype=float).ravel()))
    if errors.size == 0:
        raise ValueError("cumulative_score needs at least one error")
    # side="right" counts the errors equal to alpha: the paper's "<=".
    within = np.searchsorted(errors, np.asarray(alphas, dtype=float), side="right")
    return 100.0 * within / errors.size


def evaluation_metrics(
    ages: Sequence[float] | np.ndarray,
    predicted: Sequence[float] | np.ndarray,
    edges: Sequence[float] | None = None,
    alphas: Sequence[float] | None = None,
) -> dict:
    """Every figure of the paper's evaluation as one JSON-ready dict.

    ``mae`` is the per-subject MAE over all subjects, the paper's "Average" column;
    it is NOT the mean of the group MAEs, which would weight a group of 3 subjects
    like a group of 300. ``r2`` is the coefficient of determination of the
    predictions against the true ages (1 - SS_res / SS_tot), not ``pearson_r**2``.

    Predictions that are NaN or infinite are excluded from every figure and counted
    in ``n_nonfinite``; subjects outside the age groups still count in the overall
    figures and in ``n_outside_groups``.

    Args:
        ages: True ages in years (finite).
        predicted: Predicted ages in years, one per subject.
        edges: Age-group edges; default ``default_age_edges(max(ages))``.
        alphas: CS error levels; default ``cs_alphas()``.

    Returns:
        ``{"n", "n_nonfinite", "mae", "rmse", "pearson_r", "r2", "mean_gap",
        "age_groups": [{"label", "low", "high", "n", "mae"}, ...], "n_outside_groups",
        "cs": {"alpha": [...], "percent": [...]}}``; ``pearson_r`` is None for fewer
        than 2 subjects or a constant age or prediction, ``r2`` for fewer than 2
        subjects or a constant age, a group's ``mae`` for an empty group.

    Raises:
        ValueError: When the lengths differ, an age is not finite, or no finite
            prediction remains.

    Example:
        >>> evaluation_metrics([1.0, 2.0, 8.0], [1.5, 2.0, 7.0])["mae"]
        0.5
    """
    ages = np.asarray(ages, dtype=float).ravel()
    predicted = np.asarray(predicted, dtype=float).ravel()
    if ages.size != predicted.size:
        raise ValueError(f"{ages.size} ages but {predicted.size} predictions")
    if not np.isfinite(ages).all():
        raise ValueError("every true age must be finite")
    finite = np.isfinite(predicted)
    if not finite.any():
        raise ValueError(f"no finite prediction among {predicted.size} subjects")
    # Groups follow the whole cohort's age range, not the subjects whose prediction survived.
    edges = _checked_edges(default_age_edges(float(ages.max())) if edges is None else edges)
    alphas = cs_alphas() if alphas is None else np.asarray(alphas, dtype=float)

    ages, predicted = ages[finite], predicted[finite]
    gap = predicted - ages
    abs_error = np.abs(gap)
    n = ages.size
    age_ss = float(np.sum((ages - ages.mean()) ** 2))
    constant = n < 2 or age_ss == 0.0 or np.ptp(predicted) == 0.0
    pearson_r = None if constant else float(np.corrcoef(ages, predicted)[0, 1])
    r2 = None if n < 2 or age_ss == 0.0 else 1.0 - float(np.sum(gap**2)) / age_ss

    group = age_group_index(ages, edges)
    age_groups = [
        {
            "label": label,
            "low": float(edges[i]),
            "high": float(edges[i + 1]),
            "n": int(np.sum(group == i)),
            "mae": float(abs_error[group == i].mean()) if np.any(group == i) else None,
        }
        for i, label in enumerate(age_group_labels(edges))
    ]
    return {
        "n": int(n),
        "n_nonfinite": int(np.sum(~finite)),
        "mae": float(abs_error.mean()),
        "rmse": float(np.sqrt(np.mean(gap**2))),
        "pearson_r": pearson_r,
        "r2": r2,
        "mean_gap": float(gap.mean()),
        "age_groups": age_groups,
        "n_outside_groups": int(np.sum(group == -1)),
        "cs": {"alpha": alphas.tolist(), "percent": cumulative_score(abs_error, alphas).tolist()},
    }
