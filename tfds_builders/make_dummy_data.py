"""Writes the builders' dummy_data/ folders (tiny scans, manifests, bad rows).

Run from the repository root after changing it:

    python -m tfds_builders.make_dummy_data

* nihpd/dummy_data: a manifest (`manifest.tsv`, ages with an `age_unit` column)
  over NIfTI, MINC1, MINC2 and MGZ scans, a longitudinal subject, and bad rows:
  a corrupt file, a 4D image, an image with NaN inside the brain, a missing file, a duplicate
  (subject, session), a negative, a missing and an implausible age.
* mghbch/dummy_data: the release layout (`demographics.csv` with `age_days` and
  scans named `mghbch_<subject>_<visit>_t1w.*`), with a truncated gzip, a listed
  visit without a scan, a scan without a demographics row and an unparseable age.
* synthetic_cohort/dummy_data: the two BIDS cohorts `generate_cohort` writes for
  the test config (`TEST_CONFIG_ARGUMENTS` in the synthetic builder test).

The MINC files are nibabel's own test images (nibabel cannot write MINC); the
NIfTI and MGZ scans are the MNI152 template at 8 mm, scaled per subject.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import nibabel.processing
import numpy as np
from nilearn import datasets as nilearn_datasets

BUILDERS_DIR = Path(__file__).resolve().parent
NIBABEL_DATA = Path(nib.__file__).resolve().parent / "tests" / "data"
DUMMY_VOXEL_MM = 8.0


def _template_8mm() -> nib.Nifti1Image:
    template = nilearn_datasets.load_mni152_template(resolution=2)
    image = nib.Nifti1Image(np.asarray(template.dataobj, dtype=np.float32), template.affine)
    return nibabel.processing.resample_to_output(image, voxel_sizes=DUMMY_VOXEL_MM, order=1)


def _scaled(template: nib.Nifti1Image, scale: float, dtype=np.int16) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(template.dataobj, dtype=np.float32)
    data = data * (1000.0 * scale / data.max())
    return data.astype(dtype), template.affine


def _write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)


def _write_mgz(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.MGHImage(data.astype(np.float32), affine), path)


def _copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)


def _write_table(path: Path, header: list[str], rows: list[list[str]], separator: str) -> None:
    lines = [separator.join(header)] + [separator.join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def _reset(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def make_nihpd(template: nib.Nifti1Image) -> None:
    """Writes nihpd/dummy_data: a TSV manifest with good and bad rows."""
    root = _reset(BUILDERS_DIR / "nihpd" / "dummy_data")
    _write_nifti(root / "scans" / "s01_V1.nii.gz", *_scaled(template, 1.0))
    _copy(NIBABEL_DATA / "small.mnc", root / "scans" / "s01_V2.mnc")
    _write_mgz(root / "scans" / "s02_V1.mgz", *_scaled(template, 0.9))
    _copy(NIBABEL_DATA / "minc2_1_scale.mnc", root / "scans" / "s03.mnc")
    _write_nifti(root / "scans" / "s04.nii", *_scaled(template, 1.1))
    _write_nifti(root / "scans" / "s05.nii.gz", *_scaled(template, 0.8))
    _write_nifti(root / "scans" / "s06.nii.gz", *_scaled(template, 1.2))
    (root / "scans" / "s07_corrupt.nii.gz").write_bytes(b"this is not a NIfTI file\n")
    _copy(NIBABEL_DATA / "minc1_4d.mnc", root / "scans" / "s08_4d.mnc")
    nan_data, affine = _scaled(template, 1.0, dtype=np.float32)
    # NaN in the middle of the brain: rejected (NaN outside the brain would be read as 0).
    centre = tuple(size // 2 for size in nan_data.shape)
    nan_data[centre[0] - 1 : centre[0] + 1, centre[1] - 1 : centre[1] + 1, centre[2]] = np.nan
    _write_nifti(root / "scans" / "s09_nan.nii.gz", nan_data, affine)
    _write_nifti(root / "scans" / "s12.nii.gz", *_scaled(template, 1.05))
    header = ["subject_id", "session", "age", "age_unit", "sex", "site", "path"]
    rows = [
        ["s01", "V1", "8", "years", "M", "A", "scans/s01_V1.nii.gz"],
        ["s01", "V2", "120", "months", "M", "A", "scans/s01_V2.mnc"],
        ["s02", "V1", "2000", "days", "F", "B", "scans/s02_V1.mgz"],
        ["s03", "", "15", "years", "F", "A", "scans/s03.mnc"],
        ["s04", "", "3.5", "years", "male", "B", "scans/s04.nii"],
        ["s05", "", "-0.5", "years", "F", "A", "scans/s05.nii.gz"],
        ["s06", "", "", "years", "M", "B", "scans/s06.nii.gz"],
        ["s07", "", "12", "years", "F", "A", "scans/s07_corrupt.nii.gz"],
        ["s08", "", "6", "years", "M", "B", "scans/s08_4d.mnc"],
        ["s09", "", "9", "years", "F", "A", "scans/s09_nan.nii.gz"],
        ["s10", "", "11", "years", "M", "B", "scans/s10_missing.nii.gz"],
        ["s11", "", "1500", "months", "F", "A", "scans/s04.nii"],
        ["s12", "V1", "17", "years", "n/a", "A", "scans/s12.nii.gz"],
        ["s12", "V1", "17", "years", "n/a", "A", "scans/s04.nii"],
        ["s13", "", "5", "years", "M", "B", "scans/s05.nii.gz"],
        ["s14", "", "20", "years", "F", "A", "scans/s06.nii.gz"],
        ["s15", "", "1.5", "years", "M", "A", "scans/s01_V1.nii.gz"],
        ["s16", "", "13", "years", "F", "B", "scans/s02_V1.mgz"],
    ]
    _write_table(root / "manifest.tsv", header, rows, "\t")


def make_mghbch(template: nib.Nifti1Image) -> None:
    """Writes mghbch/dummy_data: demographics.csv plus scans in the release layout."""
    root = _reset(BUILDERS_DIR / "mghbch" / "dummy_data")
    _copy(NIBABEL_DATA / "small.mnc", root / "t1" / "mghbch_1001_V1_t1w.mnc")
    _write_nifti(root / "t1" / "mghbch_1002_V1_t1w.nii.gz", *_scaled(template, 1.0))
    _write_mgz(root / "t1" / "mghbch_1002_V2_t1w.mgz", *_scaled(template, 1.1))
    _write_nifti(root / "t1" / "mghbch_1003_V1_t1w.nii.gz", *_scaled(template, 0.9))
    good = (root / "t1" / "mghbch_1003_V1_t1w.nii.gz").read_bytes()
    (root / "t1" / "mghbch_1004_V1_t1w.nii.gz").write_bytes(good[: len(good) // 2])
    _write_nifti(root / "t1" / "mghbch_1005_V1_t1w.nii.gz", *_scaled(template, 1.2))
    _write_nifti(root / "t1" / "mghbch_1007_V1_t1w.nii.gz", *_scaled(template, 1.3))
    header = ["subject_id", "visit", "age_days", "sex", "site"]
    rows = [
        ["1001", "V1", "400", "F", "MGH"],
        ["1002", "V1", "90", "M", "BCH"],
        ["1002", "V2", "800", "M", "BCH"],
        ["1003", "V1", "1500", "F", "MGH"],
        ["1004", "V1", "700", "M", "BCH"],
        ["1005", "V1", "about two", "F", "MGH"],
        ["1006", "V1", "1000", "M", "BCH"],
    ]
    _write_table(root / "demographics.csv", header, rows, ",")


def make_synthetic() -> None:
    """Writes synthetic_cohort/dummy_data with the generator, for the builder test config."""
    from etils import epath

    from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import (
        GENERATED_FOLDER,
        ensure_generated,
    )
    from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder_test import TEST_CONFIG

    root = _reset(BUILDERS_DIR / "synthetic_cohort" / "dummy_data") / GENERATED_FOLDER
    root.mkdir()
    for _, spec in TEST_CONFIG.cohorts():
        ensure_generated(epath.Path(root), spec)


def main() -> None:
    """Rewrites every builder's dummy_data folder."""
    template = _template_8mm()
    make_nihpd(template)
    make_mghbch(template)
    make_synthetic()


if __name__ == "__main__":
    main()
