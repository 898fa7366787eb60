"""What a synthetic cohort is: `CohortSpec`, every argument its files depend on, checked once.

The command line, `plan_visits`, `generate_cohort`, its worker jobs and the TFDS builder
all pass one `CohortSpec`, so an argument is added, defaulted and checked in one place.
A spec that exists is valid: a bad argument fails on creation with a one-line
`UsageError` naming it, before anything is written. Only numpy is imported.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from brainage_tf.defaults import MAX_AGE_YEARS, MIN_AGE_YEARS
from brainage_tf.errors import UsageError
from brainage_tf.synthetic.exterior import EXTERIOR_OPTIONS
from brainage_tf.synthetic.sampling import AGE_DISTRIBUTIONS, DEFAULT_AGE_DISTRIBUTION, nihpd_arms
from brainage_tf.synthetic.sites import PROFILES
from brainage_tf.synthetic.trajectories import MAX_SUPPORTED_AGE

# The canonical type of each field: the same cohort whether an age is given as 3 or 3.0.
_FIELD_TYPES = {
    "n_subjects": int,
    "min_age": float,
    "max_age": float,
    "seed": int,
    "sessions": int,
    "voxel_scale": float,
}


@dataclasses.dataclass(frozen=True)
class CohortSpec:
    """A synthetic cohort: the same spec writes the same bytes, whatever the worker count.

    Attributes:
        n_subjects: Number of participants.
        min_age: Youngest age at the first visit, years.
        max_age: Oldest age at any visit, years (at most the trajectories' MAX_SUPPORTED_AGE).
        profile: Site profile: "discovery" (1.5 T sites) or "replication" (3 T MPRAGE sites).
        seed: Cohort seed (>= 0).
        sessions: Visits per subject; > 1 writes ``ses-N`` folders and ``sub-XXXX_sessions.tsv``.
        voxel_scale: Multiplies every site's voxel size; 2 makes small scans for fast tests.
        age_distribution: First-visit ages, one of AGE_DISTRIBUTIONS: "log_uniform" or "nihpd"
            (an NIH-PD-shaped infant arm and school-age arm; brainage_tf.synthetic.sampling).
        exterior: "fixed" (every site with the template's skull and scalp) or "varied" (each
            site its own skull, scalp fat and neck coverage; brainage_tf.synthetic.exterior).

    Raises:
        UsageError: On creation, when an argument is out of range (one line naming it).
    """

    n_subjects: int = 200
    min_age: float = MIN_AGE_YEARS
    max_age: float = MAX_AGE_YEARS
    profile: str = "discovery"
    seed: int = 0
    sessions: int = 1
    voxel_scale: float = 1.0
    age_distribution: str = DEFAULT_AGE_DISTRIBUTION
    exterior: str = "fixed"

    def __post_init__(self) -> None:
        _check(self)
        for name, kind in _FIELD_TYPES.items():
            object.__setattr__(self, name, kind(getattr(self, name)))


def _check(spec: CohortSpec) -> None:
    """Raises a UsageError naming the first argument of `spec` that is out of range."""
    n_subjects, min_age, max_age = spec.n_subjects, spec.min_age, spec.max_age
    if int(n_subjects) != n_subjects or n_subjects < 1:
        raise UsageError(f"subjects must be a positive integer, got {n_subjects}")
    if not (np.isfinite(min_age) and np.isfinite(max_age)):
        raise UsageError(f"ages must be finite, got min-age {min_age}, max-age {max_age}")
    if min_age < 0:
        raise UsageError(f"min-age must be >= 0 years, got {min_age}")
    if max_age > MAX_SUPPORTED_AGE:
        raise UsageError(
            f"max-age must be <= {MAX_SUPPORTED_AGE} years (the trajectories end there), got {max_age}"
        )
    if min_age > max_age:
        raise UsageError(f"min-age ({min_age}) is above max-age ({max_age})")
    if spec.profile not in PROFILES:
        raise UsageError(f"profile must be one of {', '.join(PROFILES)}, got {spec.profile!r}")
    if spec.seed < 0:
        raise UsageError(f"seed must be >= 0, got {spec.seed}")
    if spec.sessions < 1:
        raise UsageError(f"sessions must be >= 1, got {spec.sessions}")
    if spec.voxel_scale <= 0:
        raise UsageError(f"voxel-scale must be > 0, got {spec.voxel_scale}")
    if spec.age_distribution not in AGE_DISTRIBUTIONS:
        raise UsageError(
            f"age-distribution must be one of {', '.join(AGE_DISTRIBUTIONS)}, got {spec.age_distribution!r}"
        )
    if spec.exterior not in EXTERIOR_OPTIONS:
        raise UsageError(f"exterior must be one of {', '.join(EXTERIOR_OPTIONS)}, got {spec.exterior!r}")
    if spec.age_distribution == "nihpd":
        try:
            nihpd_arms(min_age, max_age)
        except ValueError as error:
            raise UsageError(str(error)) from None


def check_workers(workers: int | None) -> None:
    """Raises a UsageError unless `workers` is None (all CPUs) or a positive count.

    Not part of `CohortSpec`: the worker count changes how fast a cohort is written, never its bytes.
    """
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be >= 1, got {workers}")
