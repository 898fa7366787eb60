"""Tests for brainage_tf.evaluation.controls: the fits on a handful of site controls."""

import doctest
import math

import numpy as np
import pytest

from brainage_tf.evaluation import controls
from brainage_tf.evaluation.controls import fit_on_controls, minimum_controls

TRAINING_AGES = (0.2, 21.9)


def test_docstring_examples_run():
    assert doctest.testmod(controls).failed == 0


def _site(rng: np.random.Generator, n_subjects: int, prefix: str, max_sessions: int = 3):
    """Controls of a site: 1 to `max_sessions` scans per subject, heavy-tailed errors growing with age.

    A subject's sessions are exchangeable with each other (ages within a year of the subject's,
    a shared subject effect), so any fixed choice of one scan per subject is a random scan of it.
    """
    sessions_per_subject = rng.integers(1, max_sessions + 1, n_subjects)
    subject_age = rng.uniform(0.5, 21.0, n_subjects)
    subject_effect = rng.normal(0.0, 0.5, n_subjects)
    subject = np.repeat(np.arange(n_subjects), sessions_per_subject)
    ages = subject_age[subject] + rng.uniform(0.0, 1.0, subject.size)
    # A site bias (slope 0.7, intercept 3) and heavy-tailed errors that grow with age, as brain-age
    # errors do; small enough that the bias line of 9 subjects keeps a positive slope.
    noise = (0.2 + 0.05 * ages) * rng.standard_t(4, subject.size)
    predicted = 0.7 * ages + 3.0 + subject_effect[subject] + noise
    ids = np.array([f"{prefix}-sub-{s}" for s in subject])
    sessions = np.array([f"ses-{i}" for i in range(subject.size)])
    return ages, predicted, ids, sessions, subject


def _fit(ages, predicted, ids, sessions, level):
    count = ages.size
    ncc, means, stds = np.full(count, 0.9), np.zeros(count), np.ones(count)
    return fit_on_controls(ages, predicted, ids, sessions, ncc, means, stds, TRAINING_AGES, level)


@pytest.mark.parametrize("n_subjects", [9, 12])
def test_mean_coverage_of_a_handful_of_controls_lies_within_the_finite_sample_bounds(n_subjects):
    # Split conformal with n exchangeable subjects covers a new subject's random scan with
    # probability in [level, level + 1/(n+1)] (exactly k/(n+1), k = ceil((n+1) level): 9/10 = 0.9 at
    # n = 9, 12/13 = 0.923 at n = 12; bounds [0.9, 1.0] and [0.9, 0.977]). One draw's coverage
    # is Beta(k, n+1-k) from the controls (sd 0.090 at n = 9, 0.071 at n = 12) plus the binomial
    # noise of 100 test subjects, so the mean of 1500 draws has sd about 0.0025; the tolerance is 4
    # of its estimated standard errors (about 0.01): a correct fit fails it with probability ~3e-5.
    # A rank one too small covers (k-1)/(n+1) = 0.8 and 0.846, 0.1 and 0.054 below the level: more
    # than 20 standard errors, so a wrong rank cannot pass by luck either.
    level, draws, n_test = 0.9, 1500, 100
    coverages = []
    for draw in range(draws):
        rng = np.random.default_rng(draw)
        ages, predicted, ids, sessions, _ = _site(rng, n_subjects, f"d{draw}")
        fits = _fit(ages, predicted, ids, sessions, level)
        assert fits.subjects == n_subjects and fits.scans == ages.size
        test_ages, test_predicted, _, _, test_subject = _site(rng, n_test, "new")
        # One random scan of each new subject: what the guarantee is about.
        first = np.flatnonzero(np.r_[True, np.diff(test_subject) > 0])
        pick = first + rng.integers(0, np.bincount(test_subject))
        low, high = fits.conformal.interval(test_predicted[pick])
        coverages.append(np.mean((low <= test_ages[pick]) & (test_ages[pick] <= high)))
    mean, standard_error = np.mean(coverages), np.std(coverages) / math.sqrt(draws)
    tolerance = 4 * standard_error
    assert tolerance < 0.015  # the bound the comment derives, so the check stays sharp
    assert level - tolerance <= mean <= level + 1 / (n_subjects + 1) + tolerance, (mean, tolerance)


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95])
def test_the_minimum_is_the_fewest_subjects_with_a_finite_interval(level):
    # The half-width is the ceil((n+1) level)-th smallest score, finite while that rank is at most n.
    needed = minimum_controls(level)
    assert needed == max(3, math.ceil(1 / (1 - level) - 1 - 1e-9))  # n >= 1/alpha - 1: 4, 9, 19
    rng = np.random.default_rng(0)
    ages, predicted, ids, sessions, subject = _site(rng, needed, "m", max_sessions=1)
    fits = _fit(ages, predicted, ids, sessions, level)
    assert math.isfinite(fits.conformal.global_half_width) and fits.conformal.edges is None
    # The largest score at the minimum: no smaller n gives any finite width.
    assert fits.conformal.global_half_width == pytest.approx(np.max(np.abs(ages - predicted)))
    fewer = subject < needed - 1
    with pytest.raises(ValueError, match=f"{needed - 1} control subjects, at least {needed} needed"):
        _fit(ages[fewer], predicted[fewer], ids[fewer], sessions[fewer], level)


def test_bias_on_every_scan_intervals_on_one_scan_per_subject_ranges_of_the_controls():
    rng = np.random.default_rng(3)
    ages, predicted, ids, sessions, subject = _site(rng, 15, "f")
    assert ages.size > 15  # some subjects have more than one scan
    count = ages.size
    ncc, means, stds = rng.uniform(0.6, 0.9, count), rng.normal(0.0, 0.1, count), rng.uniform(1, 2, count)
    fits = fit_on_controls(ages, predicted, ids, sessions, ncc, means, stds, TRAINING_AGES, 0.9)
    slope, intercept = np.polyfit(ages, predicted, 1)
    assert fits.bias_correction.slope == pytest.approx(slope) and fits.bias_correction.n_fit == count
    assert fits.bias_correction.intercept == pytest.approx(intercept)
    assert fits.conformal.n_calibration == 15 and fits.subjects == 15
    assert fits.age_range == (ages.min(), ages.max())
    reference = fits.reference
    assert reference.age == TRAINING_AGES  # the model's training ages, not the controls'
    assert reference.registration_ncc_min == ncc.min()
    assert reference.intensity_mean == (means.min(), means.max())
    assert reference.intensity_std == (stds.min(), stds.max())


def test_controls_whose_predictions_fall_with_age_or_of_one_age_are_refused():
    rng = np.random.default_rng(4)
    ages, predicted, ids, sessions, _ = _site(rng, 12, "r", max_sessions=1)
    with pytest.raises(ValueError, match="slope -0.7.*do not rise with their ages"):
        _fit(ages, 20.0 - 0.7 * ages, ids, sessions, 0.9)
    with pytest.raises(ValueError, match="ages that vary"):
        _fit(np.full(ages.size, 7.0), predicted, ids, sessions, 0.9)
