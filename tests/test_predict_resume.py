"""`predict` on a cohort loses nothing: a kill, a dead worker or SIGTERM, then a resume equal to one run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cli_checks import export_copy_with_metadata
from toy_data import TINY_RUN_FLAGS, store_toy_tfds, toy_cohort

from brainage_tf import predict, train
from brainage_tf.preprocessing import GRIDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from predict_resume import alive, descendants  # noqa: E402  (the benchmark's /proc readers)

TINY = GRIDS["tiny"]
SCANS = 120


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 1-epoch toy run on the tiny grid, exported, and SCANS distinct MNI-space scans (cheap ones)."""
    root = tmp_path_factory.mktemp("resume")
    splits = {"train": toy_cohort(24, TINY.shape, seed=1), "test": toy_cohort(6, TINY.shape, seed=2)}
    store_toy_tfds(root / "tfds", "toy_resume", TINY.shape, splits)
    run_dir = root / "run"
    flags = ["--dataset", "toy_resume/tiny", "--data_dir", str(root / "tfds"), "--out", str(run_dir)]
    assert train.main([*flags, *TINY_RUN_FLAGS, "--epochs", "1", "--export"]) == 0
    (root / "scans").mkdir()
    scans = []
    for index, volume in enumerate(toy_cohort(SCANS, TINY.shape, seed=3)[0]):
        scans.append(str(root / "scans" / f"s{index:03d}.nii.gz"))
        nib.save(nib.Nifti1Image(volume, TINY.affine), scans[-1])
    return dict(root=root, model=str(run_dir / "export" / "1"), scans=scans)


def assert_all_exit(pids: set[int], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)], "processes of the command outlived it"


def start_predict(setup, scans, out: Path, *flags: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "brainage_tf.predict",
        "--model",
        setup["model"],
        *scans,
        "--out",
        str(out),
    ]
    return subprocess.Popen([*command, *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(process: subprocess.Popen, out: Path, rows: int, timeout: float = 120.0) -> None:
    """Waits until `rows` finished rows are on disk in OUT.partial (its first line is the provenance)."""
    partial = out.with_name(out.name + ".partial")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        if partial.exists() and len(partial.read_text().splitlines()) > rows:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {rows} rows in {partial} after {timeout} s")


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_sigkill_then_resume_writes_the_csv_of_an_uninterrupted_run(setup, tmp_path):
    reference = tmp_path / "reference.csv"
    assert (
        predict.main(["--model", setup["model"], *setup["scans"], "--out", str(reference), "--workers", "0"])
        == 0
    )
    out = tmp_path / "ages.csv"
    process = start_predict(setup, setup["scans"], out, "--workers", "2")
    wait_for_rows(process, out, 20)
    children = descendants(process.pid)
    process.kill()
    process.wait()
    assert len(children) >= 2  # the workers (and multiprocessing's resource tracker)
    assert_all_exit(children)  # no worker is left behind by a SIGKILLed command
    assert not out.exists()  # killed before the end: the rows so far are in the partial file only
    argv = ["--model", setup["model"], *setup["scans"], "--out", str(out), "--workers", "2", "--resume"]
    assert predict.main(argv) == 0
    assert out.read_bytes() == reference.read_bytes()
    assert len(read_rows(out)) == SCANS and not out.with_name("ages.csv.partial").exists()


def blocking_scan(folder: Path) -> Path:
    """An Analyze scan whose voxel file is a FIFO: a worker reading it blocks in open() until killed."""
    header = folder / "blocked.hdr"
    nib.save(nib.AnalyzeImage(np.ones(TINY.shape, np.float32), TINY.affine), header)
    (folder / "blocked.img").unlink()
    os.mkfifo(folder / "blocked.img")
    return header


def blocked_on_a_fifo(process: subprocess.Popen, timeout: float = 120.0) -> int:
    """The process below `process` that waits in open() of a FIFO (the kernel's wchan says so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        for pid in descendants(process.pid):
            try:
                if Path(f"/proc/{pid}/wchan").read_text() == "wait_for_partner":
                    return pid
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no worker blocked on the FIFO after {timeout} s")


def test_a_killed_worker_costs_its_scan_only(setup, tmp_path):
    header = blocking_scan(tmp_path)
    scans = [str(header), *setup["scans"][:10]]
    out = tmp_path / "ages.csv"
    process = start_predict(setup, scans, out, "--workers", "1")
    os.kill(blocked_on_a_fifo(process), signal.SIGKILL)  # as the out-of-memory killer would
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr[-3000:]
    assert stdout.strip().endswith(f"10 predicted, 1 failed: {out}")
    rows = read_rows(out)
    assert [row["path"] for row in rows] == scans
    # One worker: the ten scans after the killed one ran on its replacement.
    assert [row["status"] for row in rows] == ["failed"] + ["ok"] * 10
    assert rows[0]["reason"] == (
        f"{header}: the preprocessing worker died while on this scan "
        "(killed by SIGKILL, as the out-of-memory killer does)"
    )


def test_a_sigkilled_command_leaves_no_worker_behind_even_a_busy_one(setup, tmp_path):
    out = tmp_path / "ages.csv"
    scans = [str(blocking_scan(tmp_path)), *setup["scans"][:4]]
    process = start_predict(setup, scans, out, "--workers", "2")
    busy = blocked_on_a_fifo(process)  # this worker would wait forever for the FIFO's writer
    children = descendants(process.pid)
    process.kill()
    process.wait()
    assert busy in children
    assert_all_exit(children)


def test_sigterm_keeps_every_finished_row_and_leaves_no_process(setup, tmp_path):
    out = tmp_path / "ages.csv"
    process = start_predict(setup, setup["scans"], out, "--workers", "2")
    wait_for_rows(process, out, 10)
    children = descendants(process.pid)
    process.terminate()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    [last] = (
        stderr.strip().splitlines()
    )  # the one line: no TensorFlow log line, no warning (brainage_tf.console)
    assert last.startswith("interrupted by SIGTERM: ") and f" of {SCANS} scans finished, kept in " in last
    assert last.endswith("resume with: the same command plus --resume")  # 120 paths: too long to print
    assert_all_exit(children)
    finished = int(last.split(": ")[1].split()[0])
    partial = out.with_name("ages.csv.partial").read_text().splitlines()
    assert finished >= 10 and len(partial) == finished + 1 and not out.exists()


def test_a_resume_with_another_export_or_without_resume_is_refused(setup, tmp_path, capsys):
    out = tmp_path / "ages.csv"
    scans = setup["scans"][:2]
    assert predict.main(["--model", setup["model"], *scans, "--out", str(out), "--workers", "0"]) == 0
    other = export_copy_with_metadata(
        Path(setup["model"]), tmp_path / "other_export", package_version="0.0.9"
    )
    capsys.readouterr()
    assert predict.main(["--model", str(other), *scans, "--out", str(out), "--resume"]) == 2
    error = capsys.readouterr().err
    assert (
        error.count("\n") == 1
        and f"{out} was written with another export fingerprint ({setup['model']})" in error
    )
    assert predict.main(["--model", setup["model"], *scans, "--out", str(out)]) == 2
    assert f"{out} exists: pass --resume" in capsys.readouterr().err


def test_a_giant_header_is_refused_from_its_header_and_max_voxels_is_the_flag(setup, tmp_path):
    giant = tmp_path / "giant.nii"  # 1.4 KB on disk; its header claims 2048^3 int16 voxels (17 GB read)
    header = nib.Nifti1Header()
    header.set_data_shape((2048, 2048, 2048))
    header.set_data_dtype(np.int16)
    header.set_sform(np.diag([0.1, 0.1, 0.1, 1.0]), code=1)
    giant.write_bytes(header.binaryblock + b"\0" * 1000)
    scans = [str(giant), *setup["scans"][:2]]
    out = tmp_path / "ages.csv"
    # Launched from a small interpreter: a child forked from pytest would inherit pytest's peak RSS.
    launcher = "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    launcher += "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
    command = [sys.executable, "-m", "brainage_tf.predict", "--model", setup["model"], *scans]
    command += ["--out", str(out), "--workers", "1"]
    launched = [sys.executable, "-c", launcher, *command]
    done = subprocess.run(launched, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stderr[-3000:]
    # KB: the command and its worker (the largest of them) stayed under 2 GB; reading it takes 17 GB.
    assert int(done.stdout.split()[-1]) < 2 * 1024**2
    rows = read_rows(out)
    assert [row["status"] for row in rows] == ["failed", "ok", "ok"]
    assert rows[0]["reason"].startswith(f"{giant}: the header declares 2048x2048x2048 int16 voxels")
    assert "--max-voxels" in rows[0]["reason"] and "\n" not in rows[0]["reason"]

    # The toy scans hold 24 x 30 x 21 = 15,120 voxels: one fewer is allowed, and they are refused.
    small = tmp_path / "small.csv"
    argv = ["--model", setup["model"], *setup["scans"][:1], "--out", str(small), "--workers", "0"]
    assert predict.main([*argv, "--max-voxels", "15119"]) == 1
    assert "more than the limit of 15,119" in read_rows(small)[0]["reason"]
    assert predict.main([*argv, "--max-voxels", "15120", "--resume"]) == 0
    assert predict.main([*argv, "--max-voxels", "0", "--resume"]) == 2
