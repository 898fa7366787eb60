"""Tests of the nihpd builder on a TSV manifest of NIfTI, MINC and MGZ scans with bad rows."""

import json
from pathlib import Path
from unittest import mock

import tensorflow_datasets as tfds

from brainage_tf.ingest.beam import read_skip_report
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
}


class NihpdTest(tfds.testing.DatasetBuilderTestCase):
    """Builds the tiny config from dummy_data/manifest.tsv as the manual dir."""

    DATASET_CLASS = Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["tiny"]
    SPLITS = {"train": 7, "test": 2}
    SKIP_CHECKSUMS = True

    def test_skip_report_accounts_for_every_row(self):
        builder = self._make_builder(config="tiny")
        with mock.patch.object(cohort_builder.logging, "info") as log_info:
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY_DATA))
            )
        self.assertIn(mock.call("%s", "18 rows in, 9 examples written, 9 skipped"), log_info.call_args_list)
        summary = json.loads((builder.data_path / "ingest_summary.json").read_text())
        self.assertEqual((summary["rows_in"], summary["examples_written"], summary["skipped"]), (18, 9, 9))
        rows = read_skip_report(str(builder.data_path / "skip_report.tsv"))
        kinds = {row["subject"]: row["reason"].split(":")[0] for row in rows if row["subject"] != "s12"}
        self.assertEqual(kinds, EXPECTED_SKIPS)
        duplicates = [row for row in rows if row["subject"] == "s12"]
        self.assertLen(duplicates, 2)
        self.assertTrue(all(row["reason"].startswith("duplicate:") for row in duplicates))
        written = sum(split.num_examples for split in builder.info.splits.values())
        self.assertEqual(MANIFEST_ROWS, written + len(rows))

    def test_visits_of_a_subject_share_a_split(self):
        builder = self._make_builder(config="tiny")
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY_DATA))
        )
        split_of_visits = {}
        for split in ("train", "test"):
            for example in tfds.as_numpy(builder.as_dataset(split=split)):
                split_of_visits.setdefault(example["subject_id"].decode(), set()).add(split)
        self.assertEqual(split_of_visits["s01"], {"train"})
        self.assertTrue(all(len(splits) == 1 for splits in split_of_visits.values()))
