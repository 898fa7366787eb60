"""Tests of the synthetic cohort writer; every figure is measured in the written NIfTI files."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn import datasets
from scipy import ndimage
from scipy.stats import spearmanr

from brainage_tf.errors import UsageError
from brainage_tf.preprocessing import PreprocessConfig, preprocess_scan
from brainage_tf.synthetic.cohort import generate_cohort, true_brain_mask_path
from brainage_tf.synthetic.sites import SITES
from brainage_tf.synthetic.spec import CohortSpec

TINY_NONE = PreprocessConfig(grid="tiny", registration="none")


def _lower_three_class_threshold(values: np.ndarray) -> float:
    """Lower cut of a three-class Otsu split (dark CSF and skull | grey | bright), by exhaustive search."""
    counts, edges = np.histogram(values, 64)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.concatenate([[0], np.cumsum(counts)])
    moment = np.concatenate([[0], np.cumsum(counts * centres)])
    best, best_cut = -1.0, 1
    for low in range(1, 63):
        for high in range(low + 1, 64):
            score = 0.0
            for start, stop in ((0, low), (low, high), (high, 64)):
                class_weight = weight[stop] - weight[start]
                if class_weight > 0:
                    score += (moment[stop] - moment[start]) ** 2 / class_weight
            if score > best:
                best, best_cut = score, low
    return float(edges[best_cut])


def _brain_mask(data: np.ndarray) -> np.ndarray:
    """Crude skull strip: voxels above the dark (CSF, skull) class, largest connected component.

    The dark skull and CSF shells separate the bright scalp from the brain.
    """
    head = data[data > 0.1 * np.percentile(data, 99.5)]
    tissue = data > _lower_three_class_threshold(head)
    labels, count = ndimage.label(tissue)
    sizes = ndimage.sum_labels(tissue, labels, range(1, count + 1))
    return labels == 1 + int(np.argmax(sizes))


@functools.lru_cache(maxsize=1)
def _template_tissue_cores() -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """Atlas ROIs from nilearn's MNI152 maps.

    Returns the deep WM core, the cortical GM core, their affine, the tissue ml and the centroid.
    """
    grey_image = datasets.load_mni152_gm_template(resolution=2)
    grey = grey_image.get_fdata(dtype=np.float32)
    white = datasets.load_mni152_wm_template(resolution=2).get_fdata(dtype=np.float32)
    white_core = ndimage.binary_erosion(white > 0.5, iterations=3)
    grey_core = grey > 0.7
    tissue_ml = float((grey + white).sum()) * 8.0 / 1000.0
    centroid = nib.affines.apply_affine(grey_image.affine, ndimage.center_of_mass(grey + white))
    return white_core, grey_core, grey_image.affine, tissue_ml, centroid


def measure_scan(path: Path) -> tuple[float, float]:
    """Brain volume (ml) and WM/GM intensity ratio of a written scan.

    The ratio compares median intensities, after dividing out the smooth bias field (20 mm local
    mean), in atlas ROIs: nilearn's MNI152 deep-WM core and cortical-GM core, scaled to the
    measured brain volume about the measured brain centroid, restricted to the scan's own
    tissue mask (so misplaced ROI voxels falling into CSF do not count).
    """
    image = nib.load(path)
    data = image.get_fdata(dtype=np.float32)
    spacing = nib.affines.voxel_sizes(image.affine)
    brain = _brain_mask(data)
    volume_ml = float(brain.sum() * np.prod(spacing) / 1000.0)
    sigma = 20.0 / spacing
    local_mean = ndimage.gaussian_filter(np.where(brain, data, 0), sigma) / np.maximum(
        ndimage.gaussian_filter(brain.astype(np.float32), sigma), 1e-3
    )
    flattened = data / np.maximum(local_mean, 1e-3)
    white_core, grey_core, template_affine, template_ml, template_centroid = _template_tissue_cores()
    voxels = np.argwhere(brain)
    world = nib.affines.apply_affine(image.affine, voxels)
    scale = (volume_ml / template_ml) ** (1.0 / 3.0)
    template_world = template_centroid + (world - world.mean(axis=0)) / scale
    template_voxels = np.rint(
        nib.affines.apply_affine(np.linalg.inv(template_affine), template_world)
    ).astype(int)
    inside = np.all((template_voxels >= 0) & (template_voxels < white_core.shape), axis=1)
    voxels, template_voxels = voxels[inside], template_voxels[inside]
    values = flattened[tuple(voxels.T)]
    in_white = white_core[tuple(template_voxels.T)]
    in_grey = grey_core[tuple(template_voxels.T)]
    return volume_ml, float(np.median(values[in_white]) / np.median(values[in_grey]))


def _scan_paths(root: Path) -> list[Path]:
    return sorted(root.glob("sub-*/**/anat/*_T1w.nii.gz"))


@pytest.fixture(scope="module")
def young_cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """30 subjects aged 0-10 y, replication profile, 2 mm voxels (voxel_scale=2) for speed."""
    root = tmp_path_factory.mktemp("young")
    spec = CohortSpec(
        n_subjects=30, min_age=0.0, max_age=10.0, profile="replication", seed=7, voxel_scale=2.0
    )
    participants = generate_cohort(root, spec, workers=2)
    return root, participants


@pytest.fixture(scope="module")
def young_measurements(young_cohort: tuple[Path, pd.DataFrame]) -> pd.DataFrame:
    root, participants = young_cohort
    rows = [measure_scan(root / pid / "anat" / f"{pid}_T1w.nii.gz") for pid in participants.participant_id]
    return participants.assign(volume_ml=[r[0] for r in rows], wm_gm_ratio=[r[1] for r in rows])


@pytest.fixture(scope="module")
def full_resolution_cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Native-resolution scans of both profiles, discovery with two sessions."""
    roots = {}
    for profile, subjects, sessions in (("discovery", 4, 2), ("replication", 2, 1)):
        root = tmp_path_factory.mktemp(profile)
        generate_cohort(root, CohortSpec(subjects, profile=profile, seed=3, sessions=sessions), workers=2)
        roots[profile] = root
    return roots


@pytest.mark.slow
def test_brain_volume_rises_with_age(young_measurements: pd.DataFrame) -> None:
    rho = spearmanr(young_measurements.age, young_measurements.volume_ml)[0]
    print(f"Spearman rho(age, measured brain volume) over 30 subjects aged 0-10 y: {rho:.3f}")
    assert rho > 0.9
    newborn = young_measurements[young_measurements.age < 0.25].volume_ml
    school_age = young_measurements[young_measurements.age > 4].volume_ml
    assert newborn.max() < 0.6 * school_age.min()


@pytest.mark.slow
def test_white_matter_darker_in_infants_brighter_after_two(young_measurements: pd.DataFrame) -> None:
    infants = young_measurements[young_measurements.age < 0.5]
    toddlers = young_measurements[young_measurements.age > 2.0]
    print(f"WM/GM under 6 months: {infants.wm_gm_ratio.round(3).tolist()}")
    print(f"WM/GM over 2 years: {toddlers.wm_gm_ratio.round(3).tolist()}")
    assert len(infants) >= 3 and len(toddlers) >= 3
    assert (infants.wm_gm_ratio < 1.0).all()
    assert (toddlers.wm_gm_ratio > 1.0).all()


@pytest.mark.slow
def test_every_written_file_passes_preprocessing(
    young_cohort: tuple[Path, pd.DataFrame], full_resolution_cohorts: dict[str, Path]
) -> None:
    paths = _scan_paths(young_cohort[0]) + [
        p for root in full_resolution_cohorts.values() for p in _scan_paths(root)
    ]
    assert len(paths) >= 30 + 4 + 2
    print(f"{len(paths)} written scans preprocessed")
    for path in paths:
        result = preprocess_scan(path, TINY_NONE)
        assert result.volume.shape == (24, 30, 21)
        assert np.isfinite(result.volume).all()


@pytest.mark.slow  # the young cohort's measurements, which the other slow tests build anyway
def test_true_brain_masks_are_bids_derivatives_of_the_anatomy_that_rendered_each_scan(
    young_measurements: pd.DataFrame, young_cohort: tuple[Path, pd.DataFrame]
) -> None:
    root = young_cohort[0]
    description = json.loads((root / "derivatives" / "brainmask" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"] == "1.9.0"
    assert (
        json.loads((root / "derivatives" / "brainmask" / "desc-brain_mask.json").read_text())["Type"]
        == "Brain"
    )
    truth_ml, contrasts = [], []
    for subject in young_measurements.participant_id:
        scan = nib.load(root / subject / "anat" / f"{subject}_T1w.nii.gz")
        path = root / "derivatives" / "brainmask" / subject / "anat" / f"{subject}_desc-brain_mask.nii.gz"
        assert true_brain_mask_path(root, root / subject / "anat" / f"{subject}_T1w.nii.gz") == path
        mask_image = nib.load(path)
        assert mask_image.get_data_dtype() == np.uint8 and mask_image.shape == scan.shape
        assert np.array_equal(mask_image.affine, scan.affine)
        mask, data = np.asarray(mask_image.dataobj) > 0, scan.get_fdata(dtype=np.float32)
        truth_ml.append(mask.sum() * np.prod(nib.affines.voxel_sizes(scan.affine)) / 1000.0)
        # Just outside a true brain lie the dark CSF and skull shells; a mask off the brain misses them.
        shell = ndimage.binary_dilation(mask, iterations=2) & ~mask
        contrasts.append(data[mask].mean() / data[shell].mean())
    rho = spearmanr(truth_ml, young_measurements.volume_ml)[0]
    print(f"true mask ml {np.round(truth_ml).astype(int).tolist()}; rho with the measured brain {rho:.3f}")
    print(f"brain / 4 mm shell outside it: {np.round(contrasts, 2).tolist()}")
    assert rho > 0.95
    assert (np.array(truth_ml) > young_measurements.volume_ml).all()  # the truth holds the CSF too
    assert min(contrasts) > 3.0


def test_files_look_like_scanner_output(full_resolution_cohorts: dict[str, Path]) -> None:
    orientations, voxel_sizes = {}, {}
    for profile, root in full_resolution_cohorts.items():
        for path in _scan_paths(root):
            image = nib.load(path)
            assert image.get_data_dtype() == np.int16
            assert image.dataobj.slope not in (1.0, None)
            assert not np.allclose(image.affine, np.diag([1, 1, 1, 1]))
            orientations.setdefault(profile, set()).add("".join(nib.aff2axcodes(image.affine)))
            voxel_sizes.setdefault(profile, set()).add(
                tuple(np.round(sorted(nib.affines.voxel_sizes(image.affine)), 2))
            )
    assert voxel_sizes["replication"] == {(1.0, 1.0, 1.0)}
    assert orientations["replication"] <= {"LIA", "LPS"}
    assert not orientations["replication"] & orientations["discovery"]
    assert any(max(size) >= 1.5 for size in voxel_sizes["discovery"])


def test_bids_layout_and_sessions(full_resolution_cohorts: dict[str, Path]) -> None:
    root = full_resolution_cohorts["discovery"]
    participants = pd.read_csv(root / "participants.tsv", sep="\t", dtype={"participant_id": str})
    assert list(participants.columns) == [
        "participant_id",
        "age",
        "sex",
        "site",
        "tempo",
        "developmental_age",
    ]
    assert set(participants.sex) <= {"M", "F"}
    assert set(participants.site) <= {site.name for site in SITES["discovery"]}
    assert json.loads((root / "dataset_description.json").read_text())["BIDSVersion"]
    for row in participants.itertuples():
        sessions = pd.read_csv(root / row.participant_id / f"{row.participant_id}_sessions.tsv", sep="\t")
        assert list(sessions.columns) == ["session_id", "age", "developmental_age"]
        assert sessions.age.iloc[0] == pytest.approx(row.age)
        gaps = np.diff(sessions.age)
        assert np.all((gaps >= 1.0) & (gaps <= 3.0))
        assert sessions.age.max() <= 22.0
        for session in sessions.session_id:
            assert (
                root / row.participant_id / session / "anat" / f"{row.participant_id}_{session}_T1w.nii.gz"
            ).is_file()


def test_same_seed_same_bytes_regardless_of_workers(tmp_path: Path) -> None:
    spec = CohortSpec(n_subjects=2, min_age=1.0, max_age=3.0, profile="discovery", seed=11, voxel_scale=2.0)
    generate_cohort(tmp_path / "a", spec, workers=1)
    generate_cohort(tmp_path / "b", spec, workers=2)
    files_a = [p.relative_to(tmp_path / "a") for p in sorted((tmp_path / "a").rglob("*")) if p.is_file()]
    files_b = [p.relative_to(tmp_path / "b") for p in sorted((tmp_path / "b").rglob("*")) if p.is_file()]
    # 2 scans, 2 true masks, participants.tsv/.json, dataset_description.json and the masks' two JSON files.
    assert files_a == files_b and len(files_a) == 9
    for relative in files_a:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()


def test_different_seeds_give_different_anatomy(tmp_path: Path) -> None:
    volumes = []
    for seed in (1, 2):
        spec = CohortSpec(
            n_subjects=1, min_age=8.0, max_age=8.0, profile="replication", seed=seed, voxel_scale=2.0
        )
        generate_cohort(tmp_path / str(seed), spec, workers=1)
        scan = tmp_path / str(seed) / "sub-0001" / "anat" / "sub-0001_T1w.nii.gz"
        volumes.append(preprocess_scan(scan, PreprocessConfig(grid="small", registration="none")).volume)
    correlation = np.corrcoef(volumes[0].ravel(), volumes[1].ravel())[0, 1]
    assert correlation < 0.98
    assert np.abs(volumes[0] - volumes[1]).mean() > 0.05


def test_a_spec_holds_its_numbers_in_one_type_as_dataset_description_json_writes_them() -> None:
    spec = CohortSpec(3.0, min_age=1, max_age=4, seed=2.0, sessions=2.0, voxel_scale=2)
    assert [repr(value) for value in dataclasses.astuple(spec)[:-2]] == [
        "3", "1.0", "4.0", "'discovery'", "2", "2", "2.0",
    ]  # fmt: skip


def test_a_spec_rejects_bad_arguments_on_creation(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="subjects must be a positive integer"):
        CohortSpec(n_subjects=0)
    with pytest.raises(UsageError, match="is above max-age"):
        CohortSpec(n_subjects=1, min_age=10.0, max_age=2.0)
    with pytest.raises(UsageError, match="workers must be >= 1, got 0"):
        generate_cohort(tmp_path / "cohort", CohortSpec(n_subjects=1), workers=0)
    assert not (tmp_path / "cohort").exists()
