"""Which examples of a split each role of a run uses: age range, listed subjects, hashed parts.

The roles are decided per subject from its `subject_id` alone (stable hashes and an
optional list of subjects), so every session of a subject lands in the same role, in
every process and on every run. Eager (`brainage_tf.data.role_mask`) and inside
tf.data alike.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from brainage_tf.defaults import CALIBRATION_FRACTION, MAX_AGE_YEARS, MIN_AGE_YEARS, VALIDATION_FRACTION

HASH_BUCKETS = 10_000
# Second half of the SipHash key of the calibration split (the first is the calibration seed).
CALIBRATION_HASH_KEY = 0x6361_6C69_6272_6174
# What `role_mask` and the datasets accept: the calibration and selection parts make up validation.
ROLES = ("train", "validation", "selection", "calibration", "all")


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which examples of the training split a role uses.

    Attributes:
        min_age: Smallest age kept, inclusive (years).
        max_age: Largest age kept, inclusive (years).
        validation_fraction: Share of subjects carved out for validation, in [0, 1).
        calibration_fraction: Share of the validation subjects set aside for calibration, in [0, 1).
        calibration_seed: Key of the hash that splits validation into selection and calibration.
        subjects: The only subjects kept, every role alike (empty: every subject); e.g. the N
            scans of a site a model is fine-tuned on.
    """

    min_age: float = MIN_AGE_YEARS
    max_age: float = MAX_AGE_YEARS
    validation_fraction: float = VALIDATION_FRACTION
    calibration_fraction: float = CALIBRATION_FRACTION
    calibration_seed: int = 0
    subjects: tuple[str, ...] = ()


def subject_flags(subject_ids, subjects: Sequence[str]) -> tf.Tensor:
    """Whether each subject id is one of `subjects`, for any shape of ids.

    A comparison with every listed id: a run lists at most a few thousand subjects, and
    unlike a lookup table it needs no resource inside tf.data functions.
    """
    subject_ids = tf.convert_to_tensor(subject_ids, tf.string)
    listed = tf.constant(list(subjects), tf.string)
    return tf.reduce_any(tf.equal(subject_ids[..., tf.newaxis], listed), axis=-1)


def validation_flags(subject_ids, validation_fraction: float, threshold: int | None = None) -> tf.Tensor:
    """Whether each subject is in the validation part (stable hash of subject_id).

    Args:
        subject_ids: String tensor or array of subject ids, any shape.
        validation_fraction: Share of subjects in validation, in [0, 1).
        threshold: Hash bucket below which a subject validates (default: the fraction's share
            of the buckets); `listed_validation_threshold` for a list of subjects.

    Returns:
        Boolean tensor of the same shape.
    """
    if threshold is None:
        threshold = int(round(validation_fraction * HASH_BUCKETS))
    return tf.strings.to_hash_bucket_fast(subject_ids, HASH_BUCKETS) < threshold


@functools.cache
def listed_validation_threshold(subjects: tuple[str, ...], validation_fraction: float) -> int:
    """The bucket below which exactly max(1, round(fraction x n)) of n listed subjects validate.

    The hash's share of a few subjects is lumpy: 5 listed subjects at 0.2 would give no
    validation subject 33 % of the time. So a list takes the subjects of the lowest
    FarmHash buckets, the same in every process; none when the fraction is 0.
    """
    unique = sorted(set(subjects))
    if validation_fraction == 0.0 or not unique:
        return 0
    count = min(len(unique), max(1, round(validation_fraction * len(unique))))
    with tf.init_scope():  # eager, also while a tf.data function is traced
        buckets = np.sort(tf.strings.to_hash_bucket_fast(unique, HASH_BUCKETS).numpy())
    return int(buckets[count - 1]) + 1


def calibration_flags(subject_ids, calibration_fraction: float, calibration_seed: int) -> tf.Tensor:
    """Whether each subject would be in the calibration part of validation, for any shape of ids.

    A SipHash keyed by the seed, not the FarmHash of `validation_flags`: the two
    splits are independent, and another seed draws other calibration subjects.
    """
    key = [int(calibration_seed), CALIBRATION_HASH_KEY]
    buckets = tf.strings.to_hash_bucket_strong(subject_ids, HASH_BUCKETS, key)
    return buckets < int(round(calibration_fraction * HASH_BUCKETS))


def role_flags(subject_ids, ages, selection: Selection, role: str) -> tf.Tensor:
    """Which examples a role keeps, in eager mode (role_mask) and inside tf.data alike."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}.")
    in_range = (ages >= selection.min_age) & (ages <= selection.max_age)
    if selection.subjects:
        in_range &= subject_flags(subject_ids, selection.subjects)
    if role == "all":
        return in_range
    threshold = (
        listed_validation_threshold(selection.subjects, selection.validation_fraction)
        if selection.subjects
        else None
    )
    in_validation = validation_flags(subject_ids, selection.validation_fraction, threshold)
    if role in ("train", "validation"):
        return in_range & (in_validation if role == "validation" else ~in_validation)
    in_calibration = calibration_flags(
        subject_ids, selection.calibration_fraction, selection.calibration_seed
    )
    return in_range & in_validation & (in_calibration if role == "calibration" else ~in_calibration)
