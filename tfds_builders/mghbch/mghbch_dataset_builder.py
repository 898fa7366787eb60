"""MGHBCH, the replication cohort: one test split, since the whole cohort is unseen."""

from __future__ import annotations

import tensorflow_datasets as tfds

from brainage_tf.defaults import MIN_AGE_YEARS, YOUNG_MAX_AGE_YEARS
from brainage_tf.ingest import ScanRecord, read_cohort
from tfds_builders.cohort_builder import CohortBuilder, make_configs, manual_dir_layouts

COHORT = "mghbch"


class Builder(CohortBuilder):
    """MGH / Boston Children's Hospital T1w MPRAGE scans, preprocessed onto a fixed MNI grid."""

    BUILDER_CONFIGS = make_configs()
    DEFAULT_BUILDER_CONFIG_NAME = "small"
    SPLIT_NAMES = ("test",)
    AGE_RANGE_YEARS = (MIN_AGE_YEARS, YOUNG_MAX_AGE_YEARS)
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        """
    MGHBCH (Massachusetts General and Boston Children's Hospitals) is not public.
    With access, put ONE of these layouts directly in `--manual_dir`:
    """
        + manual_dir_layouts("mghbch_1001_V1_t1w.nii.gz")
        + """

    Every usable scan goes to the single `test` split. Rows that cannot be used
    are listed in `skip_report.tsv` in the prepared dataset folder.
    See docs/ingest.md.
    """
    )

    def _split_records(self, dl_manager: tfds.download.DownloadManager) -> list[tuple[str, ScanRecord]]:
        return [("test", record) for record in read_cohort(dl_manager.manual_dir, cohort=COHORT)]
