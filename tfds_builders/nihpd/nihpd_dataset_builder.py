"""NIH-PD, the discovery cohort: train/test 80/20 by subject, stratified by age."""

from __future__ import annotations

import tensorflow_datasets as tfds

from brainage_tf.ingest import AGE_BIN_WIDTH_YEARS, TEST_FRACTION, ScanRecord, assign_splits, read_cohort
from tfds_builders.cohort_builder import CohortBuilder, make_configs, manual_dir_layouts

COHORT = "nihpd"


class Builder(CohortBuilder):
    """NIH Pediatric MRI Data Repository T1w scans, preprocessed onto a fixed MNI grid."""

    BUILDER_CONFIGS = make_configs()
    DEFAULT_BUILDER_CONFIG_NAME = "small"
    SPLIT_NAMES = ("train", "test")
    HOMEPAGE = "https://www.nitrc.org/forum/forum.php?forum_id=1152"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        """
    NIH-PD is access-controlled (NIMH Data Archive). With access,
    put ONE of these layouts directly in `--manual_dir`:
    """
        + manual_dir_layouts("t1/nihpd_1001_V2_t1w.mnc")
        + """

    Rows that cannot be used are skipped and listed in `skip_report.tsv` in the
    prepared dataset folder. See docs/ingest.md.
    """
    )

    def _split_records(self, dl_manager: tfds.download.DownloadManager) -> list[tuple[str, ScanRecord]]:
        records = read_cohort(dl_manager.manual_dir, cohort=COHORT)
        splits = assign_splits(
            records,
            test_fraction=TEST_FRACTION,
            bin_width_years=AGE_BIN_WIDTH_YEARS,
            age_range=self.age_range(COHORT),
        )
        return [(splits.get((record.cohort, record.subject_id), ""), record) for record in records]
