"""Tests of the nihpd builder on a TSV manifest of NIfTI, MINC and MGZ scans with bad rows."""

from pathlib import Path
from unittest import mock

import tensorflow_datasets as tfds

from brainage_tf.ingest import INGEST_SUMMARY_NAME, IngestSummary
from brainage_tf.ingest.skips import read_skip_report
from tfds_builders import cohort_builder
from tfds_builders.nihpd.nihpd_dataset_builder import Builder

DUMMY_DATA = Path(__file__).resolve().parent / "dummy_data"
MANIFEST_ROWS = 18
EXPECTED_SKIPS = {
    "s05": "negative_age",
    "s06": "missing_age",
    "s07": "unreadable_scan",
    "s08": "not_single_volume",
    "s09": "non_finite_voxels",
    "s10": "missing_file",
    "s11": "implausible_age",
    "s15": "duplicate_content",  # s01's V1 file listed again under another subject
    "s16": "duplicate_content",  # s02's file listed again under another subject
}


class NihpdTest(tfds.testing.DatasetBuilderTestCase):
    """Builds the tiny config from dummy_data/manifest.tsv as the manual dir."""

    DATASET_CLASS = Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["tiny"]
    SPLITS = {"train": 5, "test": 2}
    SKIP_CHECKSUMS = True

    def test_skip_report_accounts_for_every_row(self):
        builder = self._make_builder(config="tiny")
        with mock.patch.object(cohort_builder.logging, "info") as log_info:
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY_DATA))
            )
        self.assertIn(mock.call("%s", "18 rows in, 7 examples written, 11 skipped"), log_info.call_args_list)
        summary = IngestSummary.read(builder.data_path / INGEST_SUMMARY_NAME)
        self.assertEqual((summary.rows_in, summary.examples_written, summary.skipped), (18, 7, 11))
        self.assertEqual(summary.skipped_by_reason["duplicate_content"], 2)
        rows = read_skip_report(str(builder.data_path / summary.skip_report))
        kinds = {row["subject"]: row["reason"].split(":")[0] for row in rows if row["subject"] != "s12"}
        self.assertEqual(kinds, EXPECTED_SKIPS)
        copy_of_s01 = next(row["reason"] for row in rows if row["subject"] == "s15")
        s01_v1 = DUMMY_DATA / "scans" / "s01_V1.nii.gz"
        self.assertIn(f"same image content as {s01_v1} (subject s01, session V1)", copy_of_s01)
        duplicates = [row for row in rows if row["subject"] == "s12"]
        self.assertLen(duplicates, 2)
        self.assertTrue(all(row["reason"].startswith("duplicate:") for row in duplicates))
        written = sum(split.num_examples for split in builder.info.splits.values())
        self.assertEqual(MANIFEST_ROWS, written + len(rows))

    def test_visits_of_a_subject_share_a_split(self):
        builder = self._make_builder(config="tiny")
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY_DATA)))
        split_of_visits = {}
        for split in ("train", "test"):
            for example in tfds.as_numpy(builder.as_dataset(split=split)):
                split_of_visits.setdefault(example["subject_id"].decode(), set()).add(split)
        self.assertEqual(split_of_visits["s01"], {"train"})
        self.assertTrue(all(len(splits) == 1 for splits in split_of_visits.values()))
