"""Read a cohort on disk into records and assign splits by subject.

`brainage_tf.ingest.beam` holds the Beam transform shared by every TFDS
builder; it is not imported here so that reading a manifest stays light.
"""

from brainage_tf.ingest.records import (
    CohortLayoutError,
    ScanRecord,
    age_problem,
    detect_layout,
    read_bids,
    read_cohort,
    read_manifest,
    read_release,
)
from brainage_tf.ingest.splits import TEST, TRAIN, assign_splits

__all__ = [
    "CohortLayoutError",
    "ScanRecord",
    "TEST",
    "TRAIN",
    "age_problem",
    "assign_splits",
    "detect_layout",
    "read_bids",
    "read_cohort",
    "read_manifest",
    "read_release",
]
