"""Out-of-distribution flags: scans and predictions unlike anything the model was trained on.

A brain-age model answers for every input, also for a failed registration or a
scan from an unseen contrast, and often with an age near the training mean (the
"same age for every scan" complaint). Each evaluated scan is compared with the
ranges of the run's training scans:

- `registration_ncc` below the lowest training value: a registration worse than any seen;
- the volume's mean or standard deviation outside the training range (widened by
  `INTENSITY_MARGIN` of the range): another contrast, scaling or field of view;
- a predicted age more than `AGE_MARGIN_YEARS` outside the training age range.

The ranges are measured on the training subjects and saved in the run directory
(`calibration.json`), so prediction can apply the same check.
"""

from __future__ import annotations

import dataclasses

import numpy as np

AGE_MARGIN_YEARS = 2.0
INTENSITY_MARGIN = 0.1


def intensity_statistics(volume: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of one model-input volume, in float64: what the ranges compare."""
    return float(volume.mean(dtype=np.float64)), float(volume.std(dtype=np.float64))


@dataclasses.dataclass(frozen=True)
class ReferenceRanges:
    """What the training scans looked like.

    Attributes:
        age: (min, max) chronological age of the training scans, years.
        registration_ncc_min: Lowest registration NCC, None when the dataset has none.
        intensity_mean: (min, max) of the per-volume mean.
        intensity_std: (min, max) of the per-volume standard deviation.
    """

    age: tuple[float, float]
    registration_ncc_min: float | None
    intensity_mean: tuple[float, float]
    intensity_std: tuple[float, float]

    @classmethod
    def measure(cls, ages, registration_ncc, intensity_mean, intensity_std) -> ReferenceRanges:
        """Ranges of the training scans' values (registration_ncc may be None)."""
        finite_ncc = None if registration_ncc is None else np.asarray(registration_ncc, float)
        return cls(
            age=(float(np.min(ages)), float(np.max(ages))),
            registration_ncc_min=None
            if finite_ncc is None or not len(finite_ncc)
            else float(finite_ncc.min()),
            intensity_mean=(float(np.min(intensity_mean)), float(np.max(intensity_mean))),
            intensity_std=(float(np.min(intensity_std)), float(np.max(intensity_std))),
        )

    def to_json(self) -> dict:
        """JSON-ready dict keyed by field name."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> ReferenceRanges:
        """Inverse of to_json."""
        return cls(
            age=tuple(values["age"]),
            registration_ncc_min=values["registration_ncc_min"],
            intensity_mean=tuple(values["intensity_mean"]),
            intensity_std=tuple(values["intensity_std"]),
        )

    def reasons(self, predicted, registration_ncc, intensity_mean, intensity_std) -> list[str]:
        """One entry per scan: "" when in distribution, else the reasons joined by "; ".

        Example:
            >>> ranges = ReferenceRanges((0.0, 22.0), 0.8, (-0.1, 0.1), (0.9, 1.1))
            >>> ranges.reasons([30.0, 10.0], [0.9, 0.5], [0.0, 0.0], [1.0, 1.0])[0]
            'predicted age 30.0 y outside 0-22 y + 2 y'
        """
        reasons = []
        for index, age in enumerate(np.asarray(predicted, float)):
            found = []
            if self.registration_ncc_min is not None and registration_ncc is not None:
                ncc = float(registration_ncc[index])
                if ncc < self.registration_ncc_min:
                    minimum = self.registration_ncc_min
                    found.append(f"registration_ncc {ncc:.3f} below the training minimum {minimum:.3f}")
            for name, value, (low, high) in (
                ("intensity mean", intensity_mean[index], self.intensity_mean),
                ("intensity std", intensity_std[index], self.intensity_std),
            ):
                margin = INTENSITY_MARGIN * (high - low)
                if not low - margin <= value <= high + margin:
                    found.append(f"{name} {value:.3g} outside the training range {low:.3g} to {high:.3g}")
            low_age, high_age = self.age
            if not np.isfinite(age):
                found.append("non-finite prediction")
            elif not low_age - AGE_MARGIN_YEARS <= age <= high_age + AGE_MARGIN_YEARS:
                found.append(
                    f"predicted age {age:.1f} y outside {low_age:g}-{high_age:g} y + {AGE_MARGIN_YEARS:g} y"
                )
            reasons.append("; ".join(found))
        return reasons
