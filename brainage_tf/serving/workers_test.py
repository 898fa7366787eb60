"""PreprocessingPool: a worker that dies costs its own scan only, and no worker outlives the pool."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brainage_tf.preprocessing import GRIDS, PreprocessConfig
from brainage_tf.serving.workers import PreprocessingPool, died_reason, preprocess_path

TINY = PreprocessConfig(grid="tiny")


def dying_task(path: str, config: PreprocessConfig):
    """A worker task (imported by name in the spawned worker) that dies on scans named for it."""
    name = Path(path).name
    if name.startswith("hang"):  # announces its pid, then waits to be killed from outside
        Path(f"{path}.pid").write_text(str(os.getpid()))
        time.sleep(300)
    if name.startswith("segfault"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("exit"):
        os._exit(3)
    return preprocess_path(path, config)


def scans(folder: Path, count: int) -> list[str]:
    """`count` distinct MNI-space scans on the tiny grid (noise, so each preprocesses to another volume)."""
    grid = GRIDS["tiny"]
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"scan{index}.nii.gz"
        nib.save(nib.Nifti1Image(rng.standard_normal(grid.shape).astype(np.float32), grid.affine), path)
        paths.append(str(path))
    return paths


def kill_when_announced(pid_file: Path) -> threading.Thread:
    """Kills with SIGKILL the worker that writes `pid_file`, as the out-of-memory killer would."""

    def kill():
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_a_killed_worker_fails_its_scan_only_and_is_replaced(tmp_path):
    good = scans(tmp_path, 4)
    hang = str(tmp_path / "hang.nii.gz")
    paths = [good[0], hang, *good[1:]]
    killer = kill_when_announced(Path(f"{hang}.pid"))
    with PreprocessingPool(TINY, workers=1, task=dying_task) as pool:
        results = {index: (scan, reason) for index, scan, reason in pool.results(paths)}
    killer.join()
    assert sorted(results) == list(range(5))
    scan, reason = results[1]
    assert scan is None and reason == f"{hang}: the preprocessing worker died while on this scan " + (
        "(killed by SIGKILL, as the out-of-memory killer does)"
    )
    # One worker: the scans after the killed one ran on its replacement.
    for index in (0, 2, 3, 4):
        scan, reason = results[index]
        assert reason == "" and scan.volume.shape == GRIDS["tiny"].shape


def test_a_crash_or_an_exit_inside_a_worker_is_that_scans_failure(tmp_path):
    good = scans(tmp_path, 2)
    paths = [str(tmp_path / "segfault.nii.gz"), good[0], str(tmp_path / "exit.nii.gz"), good[1]]
    with PreprocessingPool(TINY, workers=2, task=dying_task) as pool:
        reasons = {index: reason for index, _, reason in pool.results(paths)}
    assert reasons[0].endswith("(killed by SIGSEGV)") and reasons[0].startswith(paths[0])
    assert reasons[2].endswith("(exited with status 3)")
    assert reasons[1] == reasons[3] == ""


def test_results_match_the_in_process_preprocessing(tmp_path):
    paths = [*scans(tmp_path, 3), str(tmp_path / "missing.nii.gz")]
    with PreprocessingPool(TINY, workers=2) as pool:
        pooled = {index: (scan, reason) for index, scan, reason in pool.results(paths)}
    for index, path in enumerate(paths):
        scan, reason = preprocess_path(path, TINY)
        assert pooled[index][1] == reason
        if scan is not None:
            assert np.array_equal(pooled[index][0].volume, scan.volume)
    assert "file not found" in pooled[3][1]


def test_leaving_the_block_by_an_exception_stops_every_worker(tmp_path):
    paths = scans(tmp_path, 6)
    with pytest.raises(KeyboardInterrupt), PreprocessingPool(TINY, workers=2) as pool:
        for _ in pool.results(paths):
            processes = [worker.process for worker in pool._live]
            raise KeyboardInterrupt
    assert len(processes) == 2 and not any(process.is_alive() for process in processes)


def test_died_reason_names_the_signal_or_the_status():
    assert died_reason("a.nii", -9).endswith("(killed by SIGKILL, as the out-of-memory killer does)")
    assert died_reason("a.nii", -15).endswith("(killed by SIGTERM)")
    assert died_reason("a.nii", 1).endswith("(exited with status 1)")
