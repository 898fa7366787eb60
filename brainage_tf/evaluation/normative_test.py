"""Tests of the normative centiles: a simulated gap distribution gives its own centiles back."""

import numpy as np
import pytest
from scipy import stats

from brainage_tf.evaluation.normative import GapNorms


def _simulated(rng, n):
    """Gaps with mean 0.3 - 0.02 age and SD 0.2 + 0.1 age: errors grow with age, as a model's do."""
    ages = rng.uniform(0.0, 20.0, n)
    return ages, rng.normal(0.3 - 0.02 * ages, 0.2 + 0.1 * ages)


def test_centiles_of_a_simulated_gap_distribution_are_its_own_within_tolerance():
    rng = np.random.default_rng(0)
    norms = GapNorms.fit(*_simulated(rng, 400))
    assert norms.sd([2.0, 10.0, 18.0]) == pytest.approx([0.4, 1.2, 2.0], rel=0.15)
    assert norms.mean([10.0])[0] == pytest.approx(0.1, abs=0.15)
    # The true 5th, 50th and 95th centile at each age get centiles 5, 50 and 95.
    for age in (3.0, 10.0, 17.0):
        true = stats.norm.ppf([0.05, 0.5, 0.95], 0.3 - 0.02 * age, 0.2 + 0.1 * age)
        assert norms.centile(true, [age] * 3) == pytest.approx([5.0, 50.0, 95.0], abs=3.0)
    # On fresh children, every decile of the centiles holds a tenth of them.
    ages, gaps = _simulated(rng, 4000)
    shares = np.histogram(norms.centile(gaps, ages), bins=np.linspace(0, 100, 11))[0] / 4000
    assert shares == pytest.approx([0.1] * 10, abs=0.025)
    assert norms.z_score([norms.mean([10.0])[0] + norms.sd([10.0])[0]], [10.0])[0] == pytest.approx(1.0)


def test_norms_round_trip_through_json_hold_outside_the_fitted_ages_and_refuse_too_few(tmp_path):
    norms = GapNorms.fit(*_simulated(np.random.default_rng(1), 50))
    norms.save(tmp_path / "norms.json")
    assert GapNorms.load(tmp_path / "norms.json") == norms
    low, high = norms.age_range
    assert norms.sd([low - 5.0, high + 5.0]) == pytest.approx(norms.sd([low, high]))  # no extrapolation
    with pytest.raises(ValueError, match="at least 5 subjects, got 4"):
        GapNorms.fit([1.0, 2.0, 3.0, 4.0], [0.0, 0.1, 0.2, 0.3])
