"""Does the brain-age gap measure true developmental deviation? Figures against a known truth.

A synthetic subject's anatomy is drawn at its developmental age, age x tempo
(`brainage_tf.synthetic.rendering`), so its true developmental gap is
developmental_age - age = age x (tempo - 1), something no real cohort can know. Given
that truth this module measures, on the scans with a finite prediction and a known truth:

- the correlation of the raw gap (predicted - age) and of the bias-corrected gap with the
  true gap, and its square, the *truth share*: the part of the gap's variance that a linear
  function of the true gap explains, the rest being error (a reliability, as in test theory);
- the *oracle floor*: the MAE against chronological age of a perfect predictor of the
  developmental age, mean |developmental_age - age|: the error left when the anatomy is read
  perfectly (no strict bound: shrinking towards the cohort can do a little better); the
  model's MAE is reported beside it.

Pure numpy (docs/evaluation.md, "Ground truth").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from brainage_tf.defaults import DEVELOPMENTAL_AGE_COLUMN
from brainage_tf.evaluation.longitudinal import longitudinal_metrics

# Fewer scans than this give no correlation: two points always lie on a line.
MIN_CORRELATION_SCANS = 3


def agreement(gap: np.ndarray, true_gap: np.ndarray) -> dict:
    """Pearson r of a gap with the true gap and the truth share r² (None when not defined).

    Args:
        gap: A measured gap per scan, finite.
        true_gap: The true developmental gap of the same scans, finite.

    Returns:
        ``{"pearson_r", "truth_share"}``; both None with fewer than 3 scans or a constant series.
    """
    gap, true_gap = np.asarray(gap, float), np.asarray(true_gap, float)
    if gap.size < MIN_CORRELATION_SCANS or _constant(gap) or _constant(true_gap):
        return {"pearson_r": None, "truth_share": None}
    r = float(np.corrcoef(gap, true_gap)[0, 1])
    return {"pearson_r": r, "truth_share": r * r}


def _constant(values: np.ndarray) -> bool:
    """Constant up to float rounding (a difference of two ages is exact only to ~1e-15 of them)."""
    return bool(np.ptp(values) <= 1e-9 * (1.0 + np.abs(values).max()))


def oracle_floor(ages: Sequence[float], developmental_ages: Sequence[float]) -> float:
    """MAE against chronological age of a perfect developmental-age predictor: mean |dev. age - age|."""
    return float(np.mean(np.abs(np.asarray(developmental_ages, float) - np.asarray(ages, float))))


def truth_metrics(
    ages: Sequence[float],
    predicted: Sequence[float],
    developmental_ages: Sequence[float],
    corrected: Sequence[float] | None = None,
) -> dict | None:
    """The gap's agreement with the true developmental gap, and the oracle floor beside the MAE.

    Args:
        ages: Chronological age per scan, years.
        predicted: Predicted age per scan; non-finite ones are left out.
        developmental_ages: The scan's developmental age (age x tempo); NaN where unknown.
        corrected: Bias-corrected predicted ages of the same scans, or None.

    Returns:
        None when no scan has both a finite prediction and a known truth; else ``n``, ``mae``
        (against chronological age), ``mae_to_developmental_age``, ``oracle_floor``,
        ``true_gap_sd``, ``gap`` (`agreement` of the raw gap) and, with `corrected`,
        ``corrected_mae`` and ``corrected_gap``, all on the same scans.
    """
    ages, predicted = np.asarray(ages, float), np.asarray(predicted, float)
    developmental = np.asarray(developmental_ages, float)
    true_gap = developmental - ages
    usable = np.isfinite(true_gap) & np.isfinite(predicted)
    if corrected is not None:
        corrected = np.asarray(corrected, float)
        usable &= np.isfinite(corrected)
    if not usable.any():
        return None
    ages, predicted, developmental, true_gap = (a[usable] for a in (ages, predicted, developmental, true_gap))
    summary = {
        "n": int(usable.sum()),
        "mae": float(np.mean(np.abs(predicted - ages))),
        "mae_to_developmental_age": float(np.mean(np.abs(predicted - developmental))),
        "oracle_floor": oracle_floor(ages, developmental),
        "true_gap_sd": float(np.std(true_gap, ddof=1)) if true_gap.size > 1 else None,
        "gap": agreement(predicted - ages, true_gap),
    }
    if corrected is not None:
        corrected = corrected[usable]
        summary["corrected_mae"] = float(np.mean(np.abs(corrected - ages)))
        summary["corrected_gap"] = agreement(corrected - ages, true_gap)
    return summary


def biomarker_metrics(table: pd.DataFrame) -> dict:
    """The ground-truth and longitudinal figures of a predictions table, where it allows them.

    Args:
        table: predictions.csv as a DataFrame: ``subject_id, age, predicted_age,
            corrected_predicted_age`` (NaN without a bias correction) and, when the dataset lists
            it, ``developmental_age``.

    Returns:
        ``{"truth": truth_metrics(...)}`` when some scan has a developmental age, and
        ``{"longitudinal": longitudinal_metrics(...)}`` when some subject has two scans; {} for neither.
    """
    ages, predicted = table["age"].to_numpy(float), table["predicted_age"].to_numpy(float)
    corrected = table["corrected_predicted_age"].to_numpy(float)
    corrected = corrected if np.isfinite(corrected).any() else None
    developmental = table.get(DEVELOPMENTAL_AGE_COLUMN, pd.Series(np.nan, index=table.index))
    summary = {
        "truth": truth_metrics(ages, predicted, developmental, corrected),
        "longitudinal": longitudinal_metrics(table["subject_id"], ages, predicted, corrected),
    }
    return {key: value for key, value in summary.items() if value}
