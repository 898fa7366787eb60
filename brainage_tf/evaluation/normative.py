"""Normative centiles of the bias-corrected brain-age gap by age, from a run's calibration subjects.

A gap of +1 year means little without knowing how gaps spread at that age: a model's errors
grow with age, so +1 y is unusual at 2 and ordinary at 15. `GapNorms` models the bias-corrected
gap at age a as normal with a mean and an SD that are both linear in age, by Altman's method of
absolute residuals (Altman 1993, Statistics in Medicine 12:917-924; Wright & Royston 1997):

1. mean(a) = least-squares line of the gap on age;
2. the absolute residuals |gap - mean(a)| on age, a second line; for a normal variable
   E|residual| = SD x sqrt(2/pi), so SD(a) = sqrt(pi/2) x that line;
3. z = (gap - mean(a)) / SD(a), centile = 100 Phi(z).

Why this method (docs/evaluation.md, "Normative centiles"): a run has tens of calibration
subjects, too few for age-binned quantiles (empty or two-subject bins at the ends of the age
range) or quantile regression of the outer centiles (hundreds needed); four parameters fitted on
every subject give smooth centiles that follow the error's growth with age. Ages outside the
fitted range take the value at its nearest end (no extrapolation), and the SD line is floored at
a tenth of its mean, so it never reaches zero. Only numpy and scipy.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy.special import ndtr

from brainage_tf.evaluation.calibration import ArrayLike, _from_fields, _JsonFile, _paired

# Four parameters: two lines; one more subject leaves each a residual.
MIN_NORM_SUBJECTS = 5
# The SD line never drops below this share of its mean over the fitted subjects.
SD_FLOOR_FRACTION = 0.1
_ABS_TO_SD = math.sqrt(math.pi / 2.0)


def _line(ages: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line of values on ages."""
    centred = ages - ages.mean()
    slope = float(np.sum(centred * (values - values.mean())) / np.sum(centred**2))
    return float(values.mean() - slope * ages.mean()), slope


@dataclasses.dataclass(frozen=True)
class GapNorms(_JsonFile):
    """How the bias-corrected gap is distributed at each age: a normal with linear mean and SD.

    Example:
        >>> norms = GapNorms.fit([1.0, 2.0, 3.0, 4.0, 5.0], [0.1, -0.2, 0.4, -0.6, 0.8])
        >>> float(norms.centile([0.0], [3.0])[0]) > 40
        True
    """

    mean_intercept: float
    mean_slope: float
    sd_intercept: float
    sd_slope: float
    sd_floor: float
    age_range: tuple[float, float]
    n_fit: int
    method: str = "Altman 1993, absolute residuals"

    @classmethod
    def fit(cls, ages: ArrayLike, gaps: ArrayLike) -> GapNorms:
        """Fits the mean and SD lines on one bias-corrected gap per calibration subject.

        Raises:
            ValueError: Fewer than MIN_NORM_SUBJECTS subjects, constant ages, non-finite values.
        """
        ages, gaps = _paired(ages, gaps)
        if ages.size < MIN_NORM_SUBJECTS:
            raise ValueError(
                f"normative centiles need at least {MIN_NORM_SUBJECTS} subjects, got {ages.size}"
            )
        if np.ptp(ages) == 0:
            raise ValueError("normative centiles need ages that vary, all are equal")
        mean_intercept, mean_slope = _line(ages, gaps)
        absolute = np.abs(gaps - (mean_intercept + mean_slope * ages))
        sd_intercept, sd_slope = (_ABS_TO_SD * value for value in _line(ages, absolute))
        floor = SD_FLOOR_FRACTION * _ABS_TO_SD * float(absolute.mean())
        age_range = (float(ages.min()), float(ages.max()))
        return cls(mean_intercept, mean_slope, sd_intercept, sd_slope, floor, age_range, int(ages.size))

    def _clipped(self, ages: ArrayLike) -> np.ndarray:
        return np.clip(np.asarray(ages, dtype=float), *self.age_range)

    def mean(self, ages: ArrayLike) -> np.ndarray:
        """The expected bias-corrected gap at each age."""
        return self.mean_intercept + self.mean_slope * self._clipped(ages)

    def sd(self, ages: ArrayLike) -> np.ndarray:
        """The SD of the bias-corrected gap at each age (floored, never zero)."""
        return np.maximum(self.sd_intercept + self.sd_slope * self._clipped(ages), max(self.sd_floor, 1e-9))

    def z_score(self, gaps: ArrayLike, ages: ArrayLike) -> np.ndarray:
        """(gap - mean(age)) / SD(age) of bias-corrected gaps."""
        return (np.asarray(gaps, dtype=float) - self.mean(ages)) / self.sd(ages)

    def centile(self, gaps: ArrayLike, ages: ArrayLike) -> np.ndarray:
        """The centile (0-100) of each bias-corrected gap among children of its age."""
        return 100.0 * ndtr(self.z_score(gaps, ages))

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return {**dataclasses.asdict(self), "age_range": list(self.age_range)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GapNorms:
        """The norms that ``to_json`` wrote."""
        data = _from_fields(cls, data)
        numbers = [float(data[key]) for key in ("mean_intercept", "mean_slope", "sd_intercept", "sd_slope")]
        low, high = (float(age) for age in data["age_range"])
        method = str(data.get("method", cls.method))
        return cls(*numbers, float(data["sd_floor"]), (low, high), int(data["n_fit"]), method)
