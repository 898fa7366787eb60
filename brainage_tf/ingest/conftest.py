"""Fixtures of the cohort reader tests: files on disk and a small BIDS folder."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_file() -> Callable[..., Path]:
    """A function writing `text` to a path, creating its folders; returns the path."""

    def write(path: Path, text: str = "scan") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def bids_root(tmp_path, write_file) -> Path:
    """A BIDS folder: sub-01 (no session), sub-02 (two sessions, a T2w too), sub-03 (no scan)."""
    root = tmp_path / "bids"
    write_file(root / "dataset_description.json", json.dumps({"Name": "x", "BIDSVersion": "1.8.0"}))
    write_file(
        root / "participants.tsv",
        "participant_id\tage\tsex\tsite\nsub-01\t10\tM\tA\nsub-02\t4\tF\tB\nsub-03\t7\tF\tA\n",
    )
    write_file(root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    write_file(root / "sub-02" / "ses-1" / "anat" / "sub-02_ses-1_T1w.nii.gz")
    write_file(root / "sub-02" / "ses-2" / "anat" / "sub-02_ses-2_T1w.nii.gz")
    write_file(root / "sub-02" / "ses-2" / "anat" / "sub-02_ses-2_T2w.nii.gz")
    write_file(root / "sub-02" / "sub-02_sessions.tsv", "session_id\tage\nses-1\t4\nses-2\t6.5\n")
    return root
