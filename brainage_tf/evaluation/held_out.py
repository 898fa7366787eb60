"""Which held-out subjects each post-hoc fit of a run uses, so the intervals' guarantee holds.

The validation subjects are split by subject (`brainage_tf.data.role_mask`) into a
selection part, whose MAE picks the best epoch, and a calibration part, which takes no
part in that choice. Split-conformal coverage needs calibration scores exchangeable
with a new subject's (Vovk et al. 2005; Lei et al. 2018): scores of the subjects that
chose the model are optimistically small, so the intervals are fitted on the
calibration part only, one scan per subject (a subject's sessions are not exchangeable
with each other's subjects: they share the subject). The score is
|age - predicted| of the raw prediction; the bias correction, which claims no
coverage, is fitted on every validation scan and never enters that score.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np

from brainage_tf import data
from brainage_tf.evaluation.calibration import BiasCorrection, ConformalIntervals, min_calibration_subjects
from brainage_tf.evaluation.normative import GapNorms


@dataclasses.dataclass(frozen=True)
class HeldOutFits:
    """The bias correction and intervals of a run, with what they were fitted on.

    Attributes:
        bias_correction: Fitted on every finite validation scan (None: fewer than 3).
        conformal: Fitted on one scan per calibration subject (None: no calibration subject).
        record: JSON-ready account of the calibration part for calibration.json.
        warnings: One line per fit that could not be made or gives unbounded intervals.
        normative: Centiles of the bias-corrected gap, fitted on the same scans as the intervals
            (None: no bias correction or too few calibration subjects).
    """

    bias_correction: BiasCorrection | None
    conformal: ConformalIntervals | None
    record: dict
    warnings: tuple[str, ...]
    normative: GapNorms | None = None


def one_scan_per_subject(subject_ids: Sequence, sessions: Sequence, seed: int) -> np.ndarray:
    """Indices of one scan of each subject, drawn by a seeded hash of (subject, session), in first-seen order.

    A hash rather than the first session, so the kept scan is not always the baseline
    visit (younger than a random visit of a new subject); stable across runs and machines.
    """
    chosen: dict[str, tuple[str, int]] = {}
    for index, (subject, session) in enumerate(zip(subject_ids, sessions, strict=True)):
        subject, session = _text(subject), _text(session)
        digest = hashlib.sha256(f"{seed}/{subject}/{session}".encode()).hexdigest()
        if subject not in chosen or digest < chosen[subject][0]:
            chosen[subject] = (digest, index)
    return np.array(sorted(index for _, index in chosen.values()), dtype=int)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def fit_held_out(
    ages: np.ndarray,
    predicted: np.ndarray,
    subject_ids: np.ndarray,
    sessions: np.ndarray,
    selection: data.Selection,
    level: float,
    edges: Sequence[float] | None = None,
) -> HeldOutFits:
    """Fits the bias correction on the validation scans and the intervals on the calibration part.

    Args:
        ages: True ages of the run's validation scans (selection and calibration parts).
        predicted: The run's predictions of them (non-finite ones are left out).
        subject_ids: Their subject ids, which decide each scan's part.
        sessions: Their sessions, to keep one scan per calibration subject.
        selection: The run's selection (validation and calibration fractions, calibration seed).
        level: Coverage the intervals aim at.
        edges: Predicted-age bins of Mondrian intervals (None: one width).

    Returns:
        The fits, their record and warnings.
    """
    ages, predicted = np.asarray(ages, float), np.asarray(predicted, float)
    subject_ids = np.asarray(subject_ids, dtype=object)
    finite = np.isfinite(predicted)
    in_calibration = data.role_mask(data.Labels(ages, subject_ids), selection, "calibration") & finite
    warnings = []
    try:
        bias = BiasCorrection.fit(ages[finite], predicted[finite])
    except ValueError as error:
        bias = None
        warnings.append(f"no bias correction from {int(finite.sum())} validation scans: {error}")
    calibration_rows = np.flatnonzero(in_calibration)
    kept = calibration_rows[
        one_scan_per_subject(
            subject_ids[calibration_rows], np.asarray(sessions)[calibration_rows], selection.calibration_seed
        )
    ]
    needed = min_calibration_subjects(level)
    conformal = None
    if kept.size:
        conformal = ConformalIntervals.fit(ages[kept], predicted[kept], level=level, edges=edges)
    if kept.size < needed:
        warnings.append(
            f"{kept.size} calibration subjects are too few for {level:.0%} prediction intervals (at least "
            f"{needed}): they are {'unbounded' if kept.size else 'left out'}; raise --validation-fraction "
            "or --calibration-fraction when training."
        )
    normative = None
    # Fewer than MIN_NORM_SUBJECTS, or ages all equal: no centiles (null in calibration.json), no warning.
    with contextlib.suppress(ValueError):
        normative = (
            GapNorms.fit(ages[kept], bias.apply(predicted[kept], ages[kept]) - ages[kept]) if bias else None
        )
    selecting = data.role_mask(data.Labels(ages, subject_ids), selection, "selection")
    record = {
        "fraction": selection.calibration_fraction,
        "seed": selection.calibration_seed,
        "subjects": int(kept.size),
        "scans": int(in_calibration.sum()),
        "selection_subjects": len({_text(s) for s in subject_ids[selecting]}),
        "method": "split conformal, one scan per calibration subject; the selection subjects chose the epoch",
    }
    return HeldOutFits(bias, conformal, record, tuple(warnings), normative)
