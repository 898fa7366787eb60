"""Tests of the developmental curves against the values docs/synthetic.md documents."""

from __future__ import annotations

import numpy as np
import pytest

from brainage_tf.synthetic.sites import SITES
from brainage_tf.synthetic.trajectories import relative_brain_volume, white_grey_ratio, white_matter_share


def test_documented_age_curves() -> None:
    ages = np.array([0.0, 0.25, 0.5, 1.0, 2.0, 6.0, 12.0, 20.0])
    assert np.all(np.diff(relative_brain_volume(ages)) > 0)
    assert relative_brain_volume(0.0) == pytest.approx(0.33, abs=0.02)
    assert relative_brain_volume(2.0) == pytest.approx(0.83, abs=0.03)
    grey_volume = relative_brain_volume(ages) * (1 - white_matter_share(ages))
    assert 2.0 <= ages[np.argmax(grey_volume)] <= 12.0 and grey_volume[-1] < grey_volume.max()
    white_volume = relative_brain_volume(ages) * white_matter_share(ages)
    assert np.all(np.diff(white_volume) > 0)
    for site in SITES["discovery"] + SITES["replication"]:
        ratio = white_grey_ratio(ages, site.grey)
        assert np.all(ratio[ages <= 0.5] < 1.0) and np.all(ratio[ages >= 2.0] > 1.0)
