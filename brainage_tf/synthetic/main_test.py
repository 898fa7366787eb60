"""Tests of the command line, in process and as ``python -m brainage_tf.synthetic``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from brainage_tf.synthetic import __main__ as command
from brainage_tf.synthetic import cohort
from brainage_tf.synthetic.__main__ import main


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--subjects", "0"], "subjects must be a positive integer"),
        (["--subjects", "2", "--min-age", "-1"], "min-age must be >= 0"),
        (["--subjects", "2", "--min-age", "12", "--max-age", "5"], "min-age (12.0) is above max-age (5.0)"),
        (["--subjects", "2", "--profile", "hospital"], "invalid choice: 'hospital'"),
        (["--subjects", "2", "--age-distribution", "flat"], "invalid choice: 'flat'"),
        (
            ["--subjects", "2", "--age-distribution", "nihpd", "--min-age", "19"],
            "age-distribution nihpd enrols first visits at 0-18.5 years; the range 19-22 has none",
        ),
    ],
)
def test_bad_arguments_give_clear_cli_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "cohort"), *arguments])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cohort").exists()


def test_command_line_writes_a_dataset(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "brainage_tf.synthetic",
        "--out",
        str(tmp_path),
        "--subjects",
        "2",
        "--voxel-scale",
        "2",
        "--workers",
        "1",
        "--max-age",
        "4",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "subject" not in completed.stderr  # no bar: stderr is a pipe here, not a terminal
    participants = pd.read_csv(tmp_path / "participants.tsv", sep="\t")
    assert len(participants) == 2 and participants.age.between(0, 4).all()
    assert len(list(tmp_path.glob("sub-*/**/anat/*_T1w.nii.gz"))) == 2


def test_on_a_terminal_the_bar_counts_every_subject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rendering is faked: the bar is what is tested, and the template alone takes seconds to load.
    monkeypatch.setattr(cohort, "load_template_anatomy", lambda: None)
    row = {"age": 1.0, "sex": "F", "site": "A"}
    monkeypatch.setattr(
        cohort, "_generate_subject", lambda job: {"participant_id": f"sub-{job.index}", **row}
    )
    monkeypatch.setattr(command, "on_terminal", lambda: True)
    assert main(["--out", str(tmp_path / "a"), "--subjects", "3", "--workers", "1"]) == 0
    bar = capsys.readouterr().err
    assert bar.count("synthetic discovery:") == 4 and re.findall(r"(\d+)/3 \[", bar) == ["0", "1", "2", "3"]
    assert main(["--out", str(tmp_path / "b"), "--subjects", "3", "--workers", "1", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
