"""Skull stripping: the learned mask against the synthetic truth, its checks, its skips, the missing extra."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import nibabel.processing
import numpy as np
import pytest

from brainage_tf import skull_strip
from brainage_tf.errors import ImplausibleBrainMaskError, SkullStripUnavailableError, UsageError
from brainage_tf.ingest.beam import PreprocessRecordFn
from brainage_tf.ingest.records import ScanRecord
from brainage_tf.preprocessing import PreprocessConfig, get_grid, preprocess_scan
from brainage_tf.synthetic import CohortSpec, generate_cohort, true_brain_mask_path

needs_extra = pytest.mark.skipif(
    not skull_strip.extra_installed(),
    reason=f"the skullstrip extra is not installed ({skull_strip.SKULLSTRIP_INSTALL})",
)
# The lowest Dice of the learned mask against the truth that the test accepts: measured 0.976 and
# 0.978 for these two scans on the small grid, 0.973-0.979 over the benchmark's 40 scans of both
# profiles and all ages on the paper grid (docs/preprocessing.md); the margin absorbs torch builds.
MIN_LEARNED_DICE = 0.96
DEEPBET = PreprocessConfig(grid="small", skull_strip="deepbet")


@pytest.fixture(scope="module")
def young_scans(tmp_path_factory) -> list[tuple[Path, Path]]:
    """(scan, true mask) of a child of 1-4 y from each site profile, at the sites' own voxel sizes."""
    scans = []
    for profile in ("discovery", "replication"):
        root = tmp_path_factory.mktemp(profile)
        generate_cohort(root, CohortSpec(1, min_age=1.0, max_age=4.0, profile=profile, seed=4), workers=1)
        scan = root / "sub-0001" / "anat" / "sub-0001_T1w.nii.gz"
        scans.append((scan, true_brain_mask_path(root, scan)))
    if skull_strip.extra_installed():
        skull_strip.load_brain_extractor()  # once for the module, as a worker does
    return scans


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def _truth_on_grid(path: Path) -> tuple[np.ndarray, float]:
    """The true mask carried onto the small grid as the learned one is (trilinear, >= 0.5), and its ml."""
    image = nib.load(path)
    data = np.asarray(image.dataobj, dtype=np.float32)
    grid = get_grid("small")
    on_grid = nibabel.processing.resample_from_to(
        nib.Nifti1Image(data, image.affine), (grid.shape, grid.affine)
    )
    return np.asarray(on_grid.dataobj) >= 0.5, float(data.sum() * np.prod(image.header.get_zooms()) / 1000.0)


@needs_extra
def test_the_learned_mask_matches_the_true_brain_and_beats_the_template(young_scans):
    for scan, truth_path in young_scans:
        truth, truth_ml = _truth_on_grid(truth_path)
        learned = preprocess_scan(scan, DEEPBET)
        template = preprocess_scan(scan, PreprocessConfig(grid="small", skull_strip="template"))
        learned_dice, template_dice = _dice(learned.brain_mask, truth), _dice(template.brain_mask, truth)
        print(
            f"{scan.parent.parent.parent.name}: Dice learned {learned_dice:.3f}, template {template_dice:.3f}"
        )
        assert learned_dice >= MIN_LEARNED_DICE
        # A child's brain is not the adult template's: the learned mask must be clearly the better one.
        assert learned_dice > template_dice + 0.02
        # Measured in the scan's own space, before registration and resampling.
        assert learned.metadata.brain_volume_ml == pytest.approx(truth_ml, rel=0.1)
        assert np.all(learned.volume[~learned.brain_mask] == 0.0)


@needs_extra
def test_a_noise_volume_is_a_recorded_skip_with_its_reason(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.nii.gz"
    shape = (160, 192, 160)
    rician = np.hypot(rng.normal(0.0, 20.0, shape), rng.normal(0.0, 20.0, shape)).astype(np.float32)
    nib.save(nib.Nifti1Image(rician, np.diag([1.0, 1.0, 1.0, 1.0])), path)
    (skip,) = _ingest_outputs(path)
    print(skip.reason)
    assert skip.kind == "implausible_brain_mask" and "a noise volume, not a head" in skip.detail


def test_a_mask_no_childs_brain_has_is_a_recorded_skip_with_its_reason(young_scans, monkeypatch):
    """The true brain under a 0.4 mm header on a 1 mm head (16 times too small), and a mask of everything."""
    scan, truth_path = young_scans[1]
    truth = (
        np.asarray(nib.as_closest_canonical(nib.load(truth_path)).dataobj) > 0
    )  # in the voxels deepbet sees
    image = nib.load(scan)
    shrunk = scan.parent / "shrunk.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), np.diag([0.4, 0.4, 0.4, 1.0]) @ image.affine), shrunk)
    monkeypatch.setattr(skull_strip, "load_brain_extractor", lambda: None)  # no network: the mask is given
    for path, mask in ((shrunk, truth), (scan, np.ones_like(truth))):
        monkeypatch.setattr(
            "brainage_tf.preprocessing.learned_brain_mask", lambda data, source, mask=mask: mask
        )
        (skip,) = _ingest_outputs(path)
        print(skip.reason)
        assert skip.kind == "implausible_brain_mask"
        assert " ml, outside the 150-2500 ml a child's brain can have" in skip.detail


def _ingest_outputs(path: Path) -> list:
    """What the ingest's DoFn emits for one scan preprocessed with the learned mask (its Skip, if skipped)."""
    record = ScanRecord("s", "", str(path), path.name, 5.0, "age=5.0", "F", "S", "c")
    do_fn = PreprocessRecordFn(DEEPBET, strict=False)
    do_fn.setup()
    return [output.value for output in do_fn.process(("train", record, None, 0))]


def test_without_the_extra_the_learned_mode_is_a_one_line_error_with_the_install_command(monkeypatch):
    from tfds_builders.cohort_builder import CohortConfig

    monkeypatch.setitem(sys.modules, "deepbet", None)  # `import deepbet` now fails, as when not installed
    assert not skull_strip.extra_installed()
    skull_strip.check_available("template")  # the other modes need nothing
    with pytest.raises(SkullStripUnavailableError) as raised:
        CohortConfig(name="stripped", grid="tiny", registration="none", skull_strip="deepbet")
    message = str(raised.value)
    assert isinstance(raised.value, UsageError) and "\n" not in message
    assert message.startswith("skull stripping 'deepbet' needs deepbet and torch, which are not installed")
    assert skull_strip.SKULLSTRIP_INSTALL in message


def test_the_checks_bounds_name_the_mask_and_the_scan():
    data = np.zeros((10, 10, 10), np.float32)
    data[2:8, 2:8, 2:8] = 1.0
    mask = data > 0
    # 216 voxels of 1 ml: a brain's volume, and brighter than the rest.
    assert skull_strip.check_learned_mask(data, mask, 1000.0, "a.nii") == (216.0, 0.216)
    with pytest.raises(ImplausibleBrainMaskError, match=r"^a.nii: the learned brain mask is 22 ml, outside"):
        skull_strip.check_learned_mask(data, mask, 100.0, "a.nii")
    with pytest.raises(ImplausibleBrainMaskError, match="only 1.00 times as bright"):
        skull_strip.check_learned_mask(np.ones_like(data), mask, 1000.0, "a.nii")
