"""Post-hoc calibration of brain-age predictions: linear bias correction and conformal intervals.

Both are fitted on held-out calibration subjects: not the training set, whose
residuals are too small, nor the test set they are reported on, which would make
the test figures circular. Both save to small JSON files. Only numpy is imported.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from brainage_tf.evaluation.metrics import age_group_index

DEFAULT_CONFORMAL_LEVEL = 0.9
# Fewest scans the bias line is fitted on: two fix a line exactly, a third leaves it one residual.
MIN_BIAS_SCANS = 3

ArrayLike = Sequence[float] | np.ndarray


def _paired(ages: ArrayLike, predicted: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    ages = np.asarray(ages, dtype=float).ravel()
    predicted = np.asarray(predicted, dtype=float).ravel()
    if ages.size != predicted.size:
        raise ValueError(f"{ages.size} ages but {predicted.size} predictions")
    if not (np.isfinite(ages).all() and np.isfinite(predicted).all()):
        raise ValueError("ages and predictions must all be finite")
    return ages, predicted


def _from_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    fields = dataclasses.fields(cls)
    required = {f.name for f in fields if f.default is dataclasses.MISSING}
    missing, unknown = required - set(data), set(data) - {f.name for f in fields}
    if missing or unknown:
        raise ValueError(f"{cls.__name__}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    return data


class _JsonFile:
    """``save`` and ``load`` through the ``to_json`` and ``from_json`` of the subclass."""

    def save(self, path: str | os.PathLike) -> None:
        """Writes ``to_json()`` to a JSON file (strict JSON: no NaN or Infinity)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        """Reads a file that ``save`` wrote; a ValueError naming the file otherwise."""
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_json(json.load(f))
        except (OSError, ValueError, TypeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            raise ValueError(f"{os.fspath(path)}: cannot load {cls.__name__}: {reason}") from err


@dataclasses.dataclass(frozen=True)
class BiasCorrection(_JsonFile):
    """Linear correction of the regression to the mean of brain-age predictions.

    Brain-age models over-predict the young and under-predict the old: regressed on
    age, the prediction has slope < 1. ``fit`` estimates
    ``predicted = slope * age + intercept`` by least squares on the calibration
    subjects it is given; two corrections follow:

    * ``apply(predicted, ages)``: ``predicted + (age - (slope * age + intercept))``
      (de Lange & Cole 2020, NeuroImage: Clinical 26:102229; Smith et al. 2019,
      NeuroImage 200:528-539). The brain-age gap is then uncorrelated with age;
      it needs the true age, so it serves evaluation and group studies.
    * ``apply_without_age(predicted)``: ``(predicted - intercept) / slope``
      (Cole et al. 2018), the inverse of the fitted line, for serving when the
      age is unknown.

    Both give the true age back for a noiseless linear predictor.

    Example:
        >>> correction = BiasCorrection.fit([0.0, 10.0, 20.0], [4.0, 10.0, 16.0])
        >>> correction.slope, correction.intercept
        (0.6, 4.0)
        >>> correction.apply_without_age([13.0]).tolist()
        [15.0]
    """

    slope: float
    intercept: float
    n_fit: int
    method: str = "de Lange & Cole 2020"

    @classmethod
    def fit(cls, ages: ArrayLike, predicted: ArrayLike) -> BiasCorrection:
        """Least-squares line of predicted age on true age over the given subjects only.

        Raises:
            ValueError: For fewer than MIN_BIAS_SCANS subjects, constant ages, non-finite
                values or different lengths.
        """
        ages, predicted = _paired(ages, predicted)
        if ages.size < MIN_BIAS_SCANS:
            raise ValueError(f"bias correction needs at least {MIN_BIAS_SCANS} subjects, got {ages.size}")
        centred = ages - ages.mean()
        age_ss = float(np.sum(centred**2))
        if age_ss == 0.0:
            raise ValueError("bias correction needs ages that vary, all are equal")
        slope = float(np.sum(centred * (predicted - predicted.mean())) / age_ss)
        return cls(slope, float(predicted.mean() - slope * ages.mean()), int(ages.size))

    def apply(self, predicted: ArrayLike, ages: ArrayLike) -> np.ndarray:
        """Corrected predictions ``predicted + (age - (slope * age + intercept))``."""
        predicted, ages = np.asarray(predicted, dtype=float), np.asarray(ages, dtype=float)
        if predicted.shape != ages.shape:
            raise ValueError(f"predictions of shape {predicted.shape} but ages of shape {ages.shape}")
        return predicted + (ages - (self.slope * ages + self.intercept))

    def apply_without_age(self, predicted: ArrayLike) -> np.ndarray:
        """Corrected predictions ``(predicted - intercept) / slope``, which need no true age."""
        if self.slope == 0.0:
            raise ValueError("a bias correction with slope 0 cannot be inverted")
        return (np.asarray(predicted, dtype=float) - self.intercept) / self.slope

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BiasCorrection:
        """The correction that ``to_json`` wrote."""
        data = _from_fields(cls, data)
        method = str(data.get("method", cls.method))
        return cls(float(data["slope"]), float(data["intercept"]), int(data["n_fit"]), method)


def _conformal_rank(n: int, level: float) -> int:
    # The tolerance absorbs float error such as 100 * 0.55 = 55.00000000000001.
    return math.ceil((n + 1) * level - 1e-9)


def min_calibration_subjects(level: float) -> int:
    """The fewest calibration subjects that give a finite split-conformal interval at ``level``.

    The rank ceil((n+1) * level) must not exceed n, i.e. n >= level / (1 - level).

    Example:
        >>> min_calibration_subjects(0.9), min_calibration_subjects(0.95)
        (9, 19)
    """
    n = 1
    while _conformal_rank(n, level) > n:
        n += 1
    return n


def _conformal_half_width(abs_residuals: np.ndarray, level: float) -> float:
    n = abs_residuals.size
    rank = _conformal_rank(n, level)
    return math.inf if rank > n else float(np.sort(abs_residuals)[rank - 1])


def _width_from_json(width: float | None) -> float:
    return math.inf if width is None else float(width)


@dataclasses.dataclass(frozen=True)
class ConformalIntervals(_JsonFile):
    """Split-conformal prediction intervals ``predicted +- half_width`` on the absolute residual.

    Vovk et al. 2005; Lei et al. 2018, "Distribution-free predictive inference for
    regression". With n calibration subjects exchangeable with a new one, the
    interval holds the new true age with probability between ``level`` and
    ``level + 1/(n+1)``. The half-width is the ceil((n+1) * level)-th smallest
    |age - predicted|; when that rank exceeds n (n < level / (1 - level), e.g. 8
    subjects at 0.9) no finite width is guaranteed and it is ``inf``.

    With ``edges``, each bin of the PREDICTED age (the true age is unknown at
    prediction time) gets its own half-width (Mondrian conformal), so the width
    follows how the error grows with age. A bin whose calibration subjects are too
    few for a finite width uses the global half-width (``fallback`` marks it) and
    loses its per-bin guarantee; so do predictions outside the edges.

    In JSON, an infinite half-width is stored as null.

    Example:
        >>> intervals = ConformalIntervals.fit(np.arange(9.0), np.arange(9.0) + 0.5, level=0.8)
        >>> intervals.global_half_width
        0.5
        >>> [v.tolist() for v in intervals.interval([3.0])]
        [[2.5], [3.5]]
    """

    level: float
    edges: tuple[float, ...] | None
    half_widths: tuple[float, ...]
    global_half_width: float
    n_calibration: int
    n_per_bin: tuple[int, ...] = ()
    fallback: tuple[bool, ...] = ()

    def __post_init__(self):
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"conformal level must lie in (0, 1), got {self.level}")
        bins = 1 if self.edges is None else len(self.edges) - 1
        per_bin = 0 if self.edges is None else bins
        if (len(self.half_widths), len(self.n_per_bin), len(self.fallback)) != (bins, per_bin, per_bin):
            raise ValueError(f"{len(self.half_widths)} half-widths do not match edges {self.edges}")

    @classmethod
    def fit(
        cls,
        ages: ArrayLike,
        predicted: ArrayLike,
        level: float = DEFAULT_CONFORMAL_LEVEL,
        edges: Sequence[float] | None = None,
    ) -> ConformalIntervals:
        """Half-widths from calibration subjects that the model did not train on.

        Raises:
            ValueError: For no subjects, non-finite values, different lengths, a
                level outside (0, 1) or bad edges.
        """
        ages, predicted = _paired(ages, predicted)
        if ages.size == 0:
            raise ValueError("conformal intervals need at least one calibration subject")
        residuals = np.abs(ages - predicted)
        global_width = _conformal_half_width(residuals, level)
        if edges is None:
            return cls(level, None, (global_width,), global_width, int(ages.size))
        group = age_group_index(predicted, edges)
        bins = range(len(edges) - 1)
        widths = [_conformal_half_width(residuals[group == i], level) for i in bins]
        fallback = tuple(math.isinf(w) for w in widths)
        counts = tuple(int(np.sum(group == i)) for i in bins)
        widths = tuple(global_width if math.isinf(w) else w for w in widths)
        return cls(
            level, tuple(float(e) for e in edges), widths, global_width, int(ages.size), counts, fallback
        )

    def interval(self, predicted: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends of the interval around each prediction."""
        predicted = np.asarray(predicted, dtype=float)
        if self.edges is None:
            width = np.full(predicted.shape, self.global_half_width)
        else:
            group = age_group_index(predicted, self.edges)
            width = np.where(group >= 0, np.asarray(self.half_widths)[group], self.global_half_width)
        return predicted - width, predicted + width

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict; an infinite half-width becomes None (null)."""
        data = dataclasses.asdict(self)
        data["half_widths"] = [None if math.isinf(w) else w for w in self.half_widths]
        data["global_half_width"] = None if math.isinf(self.global_half_width) else self.global_half_width
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConformalIntervals:
        """The intervals that ``to_json`` wrote; None half-widths become inf."""
        data = _from_fields(cls, data)
        return cls(
            float(data["level"]),
            None if data["edges"] is None else tuple(float(e) for e in data["edges"]),
            tuple(_width_from_json(w) for w in data["half_widths"]),
            _width_from_json(data["global_half_width"]),
            int(data["n_calibration"]),
            tuple(int(n) for n in data.get("n_per_bin", ())),
            tuple(bool(b) for b in data.get("fallback", ())),
        )


def coverage(ages: ArrayLike, low: ArrayLike, high: ArrayLike) -> float:
    """Fraction of subjects with ``low <= age <= high``.

    Example:
        >>> coverage([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 3.5, 5.0], [1.0, 3.0, 4.0, 6.0])
        0.5
    """
    ages, low, high = (np.asarray(v, dtype=float).ravel() for v in (ages, low, high))
    if ages.size == 0 or not ages.size == low.size == high.size:
        raise ValueError(f"need equal, non-empty lengths, got {ages.size}, {low.size}, {high.size}")
    return float(np.mean((low <= ages) & (ages <= high)))
