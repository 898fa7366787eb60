"""Tests of the mghbch builder on a release layout (demographics.csv + MINC/NIfTI/MGZ)."""

import re
import shutil
from pathlib import Path

import tensorflow_datasets as tfds

from brainage_tf.errors import IngestError
from brainage_tf.ingest.skips import read_skip_report
from tfds_builders.cohort_builder import CohortConfig
from tfds_builders.mghbch.mghbch_dataset_builder import Builder

DUMMY_DATA = Path(__file__).resolve().parent / "dummy_data"
ROWS = 8  # 7 demographics rows (one without a scan) + 1 scan without a row


class MghbchTest(tfds.testing.DatasetBuilderTestCase):
    """Builds the tiny config from dummy_data as the manual dir; one test split."""

    DATASET_CLASS = Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["tiny"]
    SPLITS = {"test": 4}
    SKIP_CHECKSUMS = True

    def test_skip_report_and_labels(self):
        builder = self._make_builder(config="tiny")
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY_DATA)))
        rows = read_skip_report(str(builder.data_path / "skip_report.tsv"))
        kinds = {row["subject"]: row["reason"].split(":")[0] for row in rows}
        self.assertEqual(
            kinds,
            {
                "1004": "unreadable_scan",
                "1005": "unparseable_age",
                "1006": "missing_file",
                "1007": "missing_age",
            },
        )
        examples = list(tfds.as_numpy(builder.as_dataset(split="test")))
        self.assertEqual(ROWS, len(examples) + len(rows))
        ages = {(ex["subject_id"].decode(), ex["session"].decode()): float(ex["age"]) for ex in examples}
        self.assertAlmostEqual(ages[("1002", "V2")], 800 / 365.25, places=5)
        sources = sorted(ex["source_path"].decode() for ex in examples)
        self.assertEqual(
            sources,
            [
                "t1/mghbch_1001_V1_t1w.mnc",
                "t1/mghbch_1002_V1_t1w.nii.gz",
                "t1/mghbch_1002_V2_t1w.mgz",
                "t1/mghbch_1003_V1_t1w.nii.gz",
            ],
        )

    def test_strict_config_fails_on_the_bad_row_and_keeps_no_dataset(self):
        # One good and one bad row, so the failing row does not depend on the order Beam processes them.
        manual_dir = Path(self.tmp_dir) / "manual"
        (manual_dir / "t1").mkdir(parents=True)
        for scan in ("mghbch_1001_V1_t1w.mnc", "mghbch_1004_V1_t1w.nii.gz"):
            shutil.copy(DUMMY_DATA / "t1" / scan, manual_dir / "t1" / scan)
        (manual_dir / "demographics.csv").write_text(
            "subject_id,visit,age_days,sex,site\n1001,V1,400,F,MGH\n1004,V1,700,M,BCH\n"
        )
        strict = CohortConfig(name="tiny_strict", grid="tiny", registration="none", strict=True)
        builder = self._make_builder(config=strict)
        bad_row = f"{manual_dir / 't1' / 'mghbch_1004_V1_t1w.nii.gz'}: unreadable_scan: cannot read"
        with self.assertRaisesRegex(IngestError, f"^{re.escape(bad_row)}"):
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
            )
        self.assertFalse(builder.data_path.exists())
