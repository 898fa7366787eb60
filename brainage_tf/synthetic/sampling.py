"""When each synthetic subject is scanned: the age distributions of first visits and the gaps between visits.

Two distributions, chosen with ``age_distribution``:

- ``"log_uniform"`` (the default): first-visit ages log-uniform in (age + 0.5 y), later visits
  1-3 years apart. Dense early sampling in one smooth curve.
- ``"nihpd"``: shaped like the NIH MRI Study of Normal Brain Development (Evans 2006), which
  is the paper's discovery cohort. A share of the subjects (``NIHPD_INFANT_SHARE``) forms an
  infant arm, first seen between birth and 4.5 years (log-uniformly, as above, so most are
  first seen as babies) and rescanned every 3-12 months until 4.5 years (Objective 2; Almli
  et al. 2007). The rest form a school-age arm, first seen
  uniformly between 4.5 and 18.5 years and rescanned about every 2 years (1.5-2.5 y;
  Objective 1). So every age group of the paper's Table 1 holds scans.

Each arm is clipped to the requested age range; an arm outside it is dropped. Only numpy
is imported.
"""

from __future__ import annotations

import numpy as np

AGE_DISTRIBUTIONS = ("log_uniform", "nihpd")
DEFAULT_AGE_DISTRIBUTION = AGE_DISTRIBUTIONS[0]

# log_uniform: density proportional to 1 / (age + AGE_SAMPLING_OFFSET), visits 1-3 years apart.
AGE_SAMPLING_OFFSET = 0.5
LOG_UNIFORM_VISIT_GAP = (1.0, 3.0)

# nihpd: the two NIH-PD objectives as (first-visit ages, years between visits).
NIHPD_INFANT_AGES = (0.0, 4.5)
NIHPD_INFANT_VISIT_GAP = (0.25, 1.0)
NIHPD_SCHOOL_AGES = (4.5, 18.5)
NIHPD_SCHOOL_VISIT_GAP = (1.5, 2.5)
# Our choice, the paper being silent: a quarter of the subjects in the infant arm, which with
# visits every 3-12 months gives about a quarter of the scans under 4.5 years.
NIHPD_INFANT_SHARE = 0.25


def _clipped(ages: tuple[float, float], min_age: float, max_age: float) -> tuple[float, float] | None:
    """An arm's first-visit range inside [min_age, max_age], or None when they do not overlap."""
    low, high = max(ages[0], min_age), min(ages[1], max_age)
    return (low, high) if low < high or (low == high == min_age == max_age) else None


def nihpd_arms(
    min_age: float, max_age: float
) -> list[tuple[float, tuple[float, float], tuple[float, float], float]]:
    """The NIH-PD arms that overlap the age range: (share of subjects, first-visit ages, visit gap, last age).

    Shares are renormalised over the arms kept. Infants are followed within their arm (to
    4.5 years), school-age subjects up to ``max_age``.

    Raises:
        ValueError: When the range overlaps neither arm (e.g. 19-22 years).
    """
    infant_last = min(NIHPD_INFANT_AGES[1], max_age)
    arms = [
        (
            NIHPD_INFANT_SHARE,
            _clipped(NIHPD_INFANT_AGES, min_age, max_age),
            NIHPD_INFANT_VISIT_GAP,
            infant_last,
            True,
        ),
        (
            1.0 - NIHPD_INFANT_SHARE,
            _clipped(NIHPD_SCHOOL_AGES, min_age, max_age),
            NIHPD_SCHOOL_VISIT_GAP,
            max_age,
            False,
        ),
    ]
    kept = [arm for arm in arms if arm[1] is not None]
    if not kept:
        raise ValueError(
            f"age-distribution nihpd enrols first visits at {NIHPD_INFANT_AGES[0]:g}-"
            f"{NIHPD_SCHOOL_AGES[1]:g} years; the range {min_age:g}-{max_age:g} has none"
        )
    total = sum(arm[0] for arm in kept)
    return [(share / total, *rest) for share, *rest in kept]


def draw_first_visit(
    rng: np.random.Generator, distribution: str, min_age: float, max_age: float
) -> tuple[float, tuple[float, float], float]:
    """One subject's first-visit age, the gap range of its later visits and the age they stop at.

    Args:
        rng: The subject's random generator.
        distribution: One of AGE_DISTRIBUTIONS.
        min_age: Youngest first-visit age, years.
        max_age: Oldest age at any visit, years.

    Returns:
        (first age, (min gap, max gap) in years, last age a later visit may fall on).
    """
    if distribution == "log_uniform":
        return _log_uniform(rng, min_age, max_age), LOG_UNIFORM_VISIT_GAP, max_age
    arms = nihpd_arms(min_age, max_age)
    _, (low, high), gap, last, log_uniform = (
        arms[int(rng.random() >= arms[0][0])] if len(arms) == 2 else arms[0]
    )
    first = _log_uniform(rng, low, high) if log_uniform else float(rng.uniform(low, high))
    return first, gap, last


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """An age in [low, high] with density proportional to 1 / (age + AGE_SAMPLING_OFFSET)."""
    offset = AGE_SAMPLING_OFFSET
    age = float(np.exp(rng.uniform(np.log(low + offset), np.log(high + offset))) - offset)
    return min(max(age, low), high)


def later_visits(
    rng: np.random.Generator, first_age: float, sessions: int, gap: tuple[float, float], last_age: float
) -> list[float]:
    """Visit ages: ``first_age``, then one every ``gap`` years; visits past ``last_age`` are not acquired."""
    ages = [first_age]
    for _ in range(sessions - 1):
        next_age = ages[-1] + rng.uniform(*gap)
        if next_age > last_age:
            break
        ages.append(next_age)
    return ages
