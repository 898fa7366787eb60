"""The varied exterior changes what a site shows outside the brain, and nothing inside it."""

import dataclasses

import nibabel as nib
import numpy as np
import pytest

from brainage_tf.errors import UsageError
from brainage_tf.synthetic.anatomy import load_template_anatomy
from brainage_tf.synthetic.exterior import VARIED_EXTERIORS, site_exterior
from brainage_tf.synthetic.rendering import draw_subject_traits, render_scan_with_mask
from brainage_tf.synthetic.sites import SITES
from brainage_tf.synthetic.spec import CohortSpec

SITE_BY_NAME = {site.name: site for sites in SITES.values() for site in sites}
# disc-c: 40 mm of neck, thick bright fat; disc-b: no neck, a thin dark scalp.
NECK_SITE, PLAIN_SITE = "disc-c", "disc-b"


def _render(site_name: str, option: str, age: float = 6.0):
    """One child at `site_name` (same anatomy and session draws), as (data, brain mask, voxel ml), RAS+."""
    traits = dataclasses.replace(draw_subject_traits(np.random.default_rng(3), "discovery"),
                                 site=SITE_BY_NAME[site_name])  # fmt: skip
    exterior = site_exterior(option, site_name)
    scan, mask = render_scan_with_mask(
        load_template_anatomy(), traits, age, np.random.default_rng(4), 2.0, exterior
    )
    scan, mask = nib.as_closest_canonical(scan), nib.as_closest_canonical(mask)
    voxel_ml = float(np.prod(scan.header.get_zooms())) / 1000.0
    return np.asarray(scan.dataobj, np.float32), np.asarray(mask.dataobj) > 0, voxel_ml


def test_a_neck_site_covers_the_neck_below_the_same_brain():
    fixed, fixed_brain, voxel_ml = _render(NECK_SITE, "fixed")
    varied, varied_brain, _ = _render(NECK_SITE, "varied")
    z_mm = 2.0 * SITE_BY_NAME[NECK_SITE].voxel_size[2]  # voxel_scale 2; the site's third axis is z (RAS)
    added = varied.shape[2] - fixed.shape[2]
    assert added == round(VARIED_EXTERIORS[NECK_SITE].neck_mm / z_mm)
    # The brain is the same child's: its volume within 1 %, whatever lies below it.
    assert varied_brain.sum() == pytest.approx(fixed_brain.sum(), rel=0.01)
    tissue_below = {}
    for option, (data, brain) in {"fixed": (fixed, fixed_brain), "varied": (varied, varied_brain)}.items():
        lowest = np.flatnonzero(brain.any(axis=(0, 1)))[0]
        below = data[:, :, :lowest]
        tissue_below[option] = float((below > 0.3 * data[brain].mean()).sum() * voxel_ml)
    # Below the brain: the fixed scan shows the skull base's scalp, the neck site muscle and fat.
    assert tissue_below["varied"] > 2 * tissue_below["fixed"] + 50, tissue_below


def test_sites_without_a_neck_differ_in_their_scalp():
    contrast = {}
    for site in ("disc-d", PLAIN_SITE):  # fat 0.9 over 6 mm against 0.7 over 4 mm; neither has a neck
        data, brain, _ = _render(site, "varied")
        head = data > 0.2 * data[brain].mean()
        contrast[site] = data[head & ~brain].mean() / data[brain].mean()
    assert contrast["disc-d"] > 1.1 * contrast[PLAIN_SITE], contrast


def test_an_unknown_exterior_is_a_one_line_usage_error():
    with pytest.raises(UsageError, match="exterior must be one of fixed, varied, got 'neck'"):
        CohortSpec(exterior="neck")
