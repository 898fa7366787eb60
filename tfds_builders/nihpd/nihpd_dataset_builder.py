"""NIH-PD, the discovery cohort: train/test 80/20 by subject, stratified by age."""

from __future__ import annotations

import tensorflow_datasets as tfds

from brainage_tf.ingest.records import ScanRecord, read_cohort
from brainage_tf.ingest.splits import assign_splits
from tfds_builders.cohort_builder import CohortBuilder, make_configs

COHORT = "nihpd"
TEST_FRACTION = 0.2
AGE_BIN_WIDTH_YEARS = 1.0


class Builder(CohortBuilder):
    """NIH Pediatric MRI Data Repository T1w scans, preprocessed onto a fixed MNI grid."""

    BUILDER_CONFIGS = make_configs()
    DEFAULT_BUILDER_CONFIG_NAME = "small"
    SPLIT_NAMES = ("train", "test")
    HOMEPAGE = "https://www.nitrc.org/forum/forum.php?forum_id=1152"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    NIH-PD is access-controlled (NIMH Data Archive). With access,
    put ONE of these layouts directly in `--manual_dir`:

    1. The release: `demographics.csv` (or `.tsv`) with columns
       `subject_id, visit, age_days` (or `age_months`, `age_years`; the column
       name states the unit) and optionally `sex` (M/F), `site`; plus the T1w
       scans (MINC `.mnc`, NIfTI `.nii`/`.nii.gz` or MGZ) anywhere below it,
       named so that `<subject_id>_<visit>` appears as whole tokens, e.g.
       `t1/nihpd_1001_V2_t1w.mnc`.
    2. A BIDS folder: `participants.tsv` (participant_id, age in years, sex,
       site), `sub-*/[ses-*/]anat/*_T1w.nii.gz`, and for longitudinal data
       `sub-*/sub-*_sessions.tsv` (session_id, age).
    3. A manifest `manifest.csv` or `manifest.tsv` with columns
       `subject_id, age, path[, session, sex, site]`; `age` is in years, or
       name the column `age_months` / `age_days`, or add an `age_unit` column.
       Relative paths are resolved against the manifest's folder.

    Rows that cannot be used are skipped and listed in `skip_report.tsv` in the
    prepared dataset folder. See docs/ingest.md.
    """

    def _split_records(self, dl_manager: tfds.download.DownloadManager) -> list[tuple[str, ScanRecord]]:
        records = read_cohort(dl_manager.manual_dir, cohort=COHORT)
        splits = assign_splits(records, test_fraction=TEST_FRACTION, bin_width_years=AGE_BIN_WIDTH_YEARS)
        return [(splits.get((record.cohort, record.subject_id), ""), record) for record in records]
