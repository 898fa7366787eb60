"""Read a cohort on disk into records, assign splits by subject, summarize an ingest.

`brainage_tf.ingest.beam` holds the Beam transform shared by every TFDS
builder; it is not imported here so that reading a manifest or an ingest
summary stays light.
"""

from brainage_tf.ingest.ages import age_problem
from brainage_tf.ingest.bids import read_bids
from brainage_tf.ingest.layout import detect_layout, read_cohort
from brainage_tf.ingest.manifest import read_manifest
from brainage_tf.ingest.records import ScanRecord
from brainage_tf.ingest.release import read_release
from brainage_tf.ingest.splits import AGE_BIN_WIDTH_YEARS, TEST, TEST_FRACTION, TRAIN, assign_splits
from brainage_tf.ingest.summary import INGEST_SUMMARY_NAME, SKIP_REPORT_NAME, IngestSummary

__all__ = [
    "AGE_BIN_WIDTH_YEARS",
    "INGEST_SUMMARY_NAME",
    "IngestSummary",
    "SKIP_REPORT_NAME",
    "ScanRecord",
    "TEST",
    "TEST_FRACTION",
    "TRAIN",
    "age_problem",
    "assign_splits",
    "detect_layout",
    "read_bids",
    "read_cohort",
    "read_manifest",
    "read_release",
]
