"""MGHBCH, the replication cohort: one test split, since the whole cohort is unseen."""

from __future__ import annotations

import tensorflow_datasets as tfds

from brainage_tf.ingest.records import ScanRecord, read_cohort
from tfds_builders.cohort_builder import CohortBuilder, make_configs

COHORT = "mghbch"


class Builder(CohortBuilder):
    """MGH / Boston Children's Hospital T1w MPRAGE scans, preprocessed onto a fixed MNI grid."""

    BUILDER_CONFIGS = make_configs()
    DEFAULT_BUILDER_CONFIG_NAME = "small"
    SPLIT_NAMES = ("test",)
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    MGHBCH (Massachusetts General and Boston Children's Hospitals) is not public.
    With access, put ONE of these layouts directly in `--manual_dir`:

    1. A release folder: `demographics.csv` (or `.tsv`) with columns
       `subject_id, visit, age_days` (or `age_months`, `age_years`; the column
       name states the unit) and optionally `sex` (M/F), `site`; plus the T1w
       scans (MINC, NIfTI or MGZ) anywhere below it, named so that
       `<subject_id>_<visit>` appears as whole tokens, e.g. `mghbch_1001_V1_t1w.nii.gz`.
    2. A BIDS folder: `participants.tsv` (participant_id, age in years, sex,
       site), `sub-*/[ses-*/]anat/*_T1w.nii.gz`, and for longitudinal data
       `sub-*/sub-*_sessions.tsv` (session_id, age).
    3. A manifest `manifest.csv` or `manifest.tsv` with columns
       `subject_id, age, path[, session, sex, site]`; `age` is in years, or
       name the column `age_months` / `age_days`, or add an `age_unit` column.

    Every usable scan goes to the single `test` split. Rows that cannot be used
    are listed in `skip_report.tsv` in the prepared dataset folder.
    See docs/ingest.md.
    """

    def _split_records(self, dl_manager: tfds.download.DownloadManager) -> list[tuple[str, ScanRecord]]:
        return [("test", record) for record in read_cohort(dl_manager.manual_dir, cohort=COHORT)]
