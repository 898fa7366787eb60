"""The gap across a subject's visits: change between visits, within-subject spread, ICC.

For the subjects with two or more finitely predicted scans (docs/evaluation.md, "Longitudinal"):

- change between consecutive visits (sorted by age): the predicted change against the true
  one, as the MAE of the change and the least-squares slope of predicted on true change
  (1 when the model follows a child's growth, below 1 when it flattens it);
- the within-subject SD of the gap, sqrt(MSW), and its intraclass correlation ICC(1):
  one-way random effects (Shrout & Fleiss 1979, ICC(1,1)), with the average visit count
  n0 of unequal groups (Snedecor & Cochran; Donner 1986):

      MSB = sum_i n_i (m_i - m)^2 / (k - 1),   MSW = sum_i sum_j (g_ij - m_i)^2 / (N - k),
      n0  = (N - sum_i n_i^2 / N) / (k - 1),   ICC(1) = (MSB - MSW) / (MSB + (n0 - 1) MSW),

  for k subjects, n_i scans of subject i, N scans in all, m_i a subject's mean gap, m the mean
  of all scans. One-way, since visits are no fixed "raters": their number and spacing differ
  between children, so no visit effect can be separated from error, and any change of the gap
  between visits counts against its stability, as it should for a trait.

Pure numpy and pandas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# A slope needs this many visit pairs; an ICC this many subjects.
MIN_PAIRS, MIN_SUBJECTS = 2, 2


def _repeated(subject_ids: Sequence[str], ages: Sequence[float], values: dict) -> pd.DataFrame:
    """Finite rows of subjects with at least two of them, sorted by subject and age."""
    table = pd.DataFrame({"subject_id": np.asarray(subject_ids, str), "age": np.asarray(ages, float)})
    for name, column in values.items():
        table[name] = np.asarray(column, float)
    table = table[np.isfinite(table.drop(columns="subject_id").to_numpy()).all(axis=1)]
    table = table[table.groupby("subject_id")["age"].transform("size") >= 2]
    return table.sort_values(["subject_id", "age"], kind="stable")


def icc1(values: Sequence[float], groups: Sequence[str]) -> dict:
    """ICC(1) of one value measured several times per group, and the within-group SD.

    Args:
        values: One finite value per measurement.
        groups: The group (subject) of each measurement; groups of one measurement count too.

    Returns:
        ``{"subjects", "scans", "within_subject_sd", "between_subject_sd", "icc"}``; the SDs
        and the ICC are None when undefined (fewer than 2 groups, or no repeated measurement).
    """
    table = pd.DataFrame({"value": np.asarray(values, float), "group": np.asarray(groups, str)})
    sizes = table.groupby("group")["value"].size().to_numpy(float)
    means = table.groupby("group")["value"].mean()
    k, total = sizes.size, sizes.sum()
    result = {"subjects": int(k), "scans": int(total), "within_subject_sd": None, "between_subject_sd": None}
    result["icc"] = None
    if k < MIN_SUBJECTS or total <= k:
        return result
    deviation = table["value"] - table["group"].map(means)
    msw = float((deviation**2).sum() / (total - k))
    msb = float((sizes * (means.to_numpy() - table["value"].mean()) ** 2).sum() / (k - 1))
    n0 = (total - (sizes**2).sum() / total) / (k - 1)
    denominator = msb + (n0 - 1) * msw
    result["within_subject_sd"] = float(np.sqrt(msw))
    # Between-subject variance component (MSB - MSW) / n0, floored at 0 as estimates can go negative.
    result["between_subject_sd"] = float(np.sqrt(max(msb - msw, 0.0) / n0))
    result["icc"] = float((msb - msw) / denominator) if denominator > 0 else None
    return result


def change_metrics(subject_ids: Sequence[str], ages: Sequence[float], predicted: Sequence[float]) -> dict:
    """Predicted against true age change between consecutive visits of each subject.

    Returns:
        ``{"pairs", "mean_true_change", "mae", "slope", "intercept"}``: MAE of predicted minus
        true change, least-squares line of predicted on true change (None with fewer than 2
        pairs or one true change only); ``pairs`` 0 and the rest None when no subject has two scans.
    """
    table = _repeated(subject_ids, ages, {"predicted": predicted})
    steps = table.groupby("subject_id")[["age", "predicted"]].diff().dropna()
    true_change, predicted_change = steps["age"].to_numpy(), steps["predicted"].to_numpy()
    result = {"pairs": int(true_change.size), "mean_true_change": None, "mae": None}
    result.update(slope=None, intercept=None)
    if not true_change.size:
        return result
    result["mean_true_change"] = float(true_change.mean())
    result["mae"] = float(np.mean(np.abs(predicted_change - true_change)))
    if true_change.size >= MIN_PAIRS and np.ptp(true_change) > 0:
        slope, intercept = np.polyfit(true_change, predicted_change, 1)
        result["slope"], result["intercept"] = float(slope), float(intercept)
    return result


def longitudinal_metrics(
    subject_ids: Sequence[str],
    ages: Sequence[float],
    predicted: Sequence[float],
    corrected: Sequence[float] | None = None,
) -> dict | None:
    """Change, within-subject SD and ICC(1) of the gap over the subjects scanned at least twice.

    Args:
        subject_ids: Subject of each scan.
        ages: Chronological age per scan, years.
        predicted: Predicted age per scan; non-finite ones are left out.
        corrected: Bias-corrected predicted ages, or None.

    Returns:
        None when no subject has two finitely predicted scans; else ``change``
        (`change_metrics`), ``gap`` (`icc1` of the raw gap) and, with `corrected`,
        ``corrected_gap`` (`icc1` of the bias-corrected gap).
    """
    columns = {"gap": np.asarray(predicted, float) - np.asarray(ages, float)}
    if corrected is not None:
        columns["corrected_gap"] = np.asarray(corrected, float) - np.asarray(ages, float)
    table = _repeated(subject_ids, ages, columns)
    if table.empty:
        return None
    summary = {"change": change_metrics(subject_ids, ages, predicted)}
    for name in columns:
        summary[name] = icc1(table[name], table["subject_id"])
    return summary
