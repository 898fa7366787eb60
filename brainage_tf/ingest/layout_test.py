"""Tests of layout detection and `read_cohort`."""

import pytest

from brainage_tf.errors import CohortLayoutError
from brainage_tf.ingest.layout import detect_layout, read_cohort


def test_detect_layout_finds_exactly_one(tmp_path, write_file):
    with pytest.raises(CohortLayoutError, match="no cohort layout found"):
        detect_layout(tmp_path)
    write_file(tmp_path / "manifest.csv", "subject_id,age,path\n")
    assert detect_layout(tmp_path)[0] == "manifest"
    write_file(tmp_path / "participants.tsv", "participant_id\tage\n")
    with pytest.raises(CohortLayoutError, match="several cohort layouts"):
        detect_layout(tmp_path)


def test_read_cohort_dispatches_on_layout(tmp_path, bids_root):
    assert detect_layout(bids_root)[0] == "bids"
    assert len(read_cohort(bids_root)) == 4
    with pytest.raises(CohortLayoutError, match="does not exist"):
        read_cohort(tmp_path / "absent")
