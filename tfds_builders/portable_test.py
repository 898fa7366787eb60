"""On the portable runner and a pool of SDK workers, the builders prepare what the DirectRunner does.

This is the path Flink, Spark and Dataflow take: the pipeline goes to a job server as
Beam's portable representation, its DoFns are pickled and run in worker processes
the pool starts, and the ingest counters come back through the job's metrics, where
the builders' accounting checks read them. The job server is `tfds_builders.job_service`,
which, as a Flink job server does, splits each stage between `sdk_worker_parallelism`
workers: each build below runs in 2 worker processes of the pool. (Beam's embedded job
server would ask the pool for one worker per job; `BRAINAGE_PORTABLE_ALL_CASES=1` also runs
the manifest on it.)

Each case costs 15-25 s on 2 loaded cores, mostly the worker's start (it imports TensorFlow
for TFDS's writer), so the suite runs one: the nihpd manifest, whose rows take every path
the workers have (every skip reason, copies found through the GroupByKey and side input,
NIfTI, MINC and MGZ scans, two splits). The other builders and layouts differ in how the
launching process reads the records; `BRAINAGE_PORTABLE_ALL_CASES=1` runs them too (all four
were equal on 2026-12-04).
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from tfds_builders.portable import JobService, WorkerPool, compare_prepared, free_port, portable_options
from tfds_builders.prepare import prepare_dataset
from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import GENERATED_FOLDER
from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder_test import DUMMY_DATA, TEST_CONFIG

BUILDERS = Path(__file__).resolve().parent
# The synthetic builder test's config (5 + 2 subjects, 2 visits, tiny grid) as `tfds build --config` JSON.
_SYNTHETIC_SETTINGS = ("name", "grid", "registration", "discovery_subjects", "replication_subjects",
                       "sessions", "voxel_scale", "generator_workers")  # fmt: skip
SYNTHETIC_CONFIG = json.dumps({name: getattr(TEST_CONFIG, name) for name in _SYNTHETIC_SETTINGS})
# An NIH-PD release: the nihpd manifest test's scans renamed `nihpd_<subject>_<visit>_t1w`, with a
# corrupt scan (s07) and a row without a scan (s10).
RELEASE_SCANS = {"s01_V1.nii.gz": "s01_V1", "s01_V2.mnc": "s01_V2", "s02_V1.mgz": "s02_V1",
                 "s03.mnc": "s03_V1", "s04.nii": "s04_V1", "s07_corrupt.nii.gz": "s07_V1"}  # fmt: skip
RELEASE_TABLE = """subject_id,visit,age_years
s01,V1,8
s01,V2,10
s02,V1,5.5
s03,V1,15
s04,V1,3.5
s07,V1,12
s10,V1,11
"""
STARTED_WORKER = "Starting worker with command"
SDK_WORKERS = 2
ALL_CASES = pytest.mark.skipif(
    not os.environ.get("BRAINAGE_PORTABLE_ALL_CASES"), reason="set BRAINAGE_PORTABLE_ALL_CASES=1 to run"
)


@pytest.fixture(scope="module")
def worker_pool(request, tmp_path_factory) -> WorkerPool:
    """Beam's SDK worker pool on a free port, stopped with its workers whatever the tests do."""
    pool = WorkerPool(free_port(), tmp_path_factory.mktemp("pool") / "pool.log")
    request.addfinalizer(pool.stop)
    return pool


@pytest.fixture(scope="module")
def job_service(request, tmp_path_factory) -> JobService:
    """The job server that runs SDK_WORKERS workers per job, stopped whatever the tests do."""
    service = JobService(free_port(), tmp_path_factory.mktemp("job") / "job_service.log")
    request.addfinalizer(service.stop)
    return service


def _nihpd_release(root: Path) -> Path:
    for source, visit in RELEASE_SCANS.items():
        suffix = source[source.index(".") :]
        target = root / "t1" / f"nihpd_{visit}_t1w{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(BUILDERS / "nihpd" / "dummy_data" / "scans" / source, target)
    (root / "demographics.csv").write_text(RELEASE_TABLE)
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    "builder, layout, workers",
    [
        pytest.param("synthetic_cohort", "bids", SDK_WORKERS, marks=ALL_CASES),
        ("nihpd", "manifest", SDK_WORKERS),
        pytest.param("nihpd", "manifest", 1, marks=ALL_CASES),  # Beam's embedded job server
        pytest.param("nihpd", "release", SDK_WORKERS, marks=ALL_CASES),
        pytest.param("mghbch", "release", SDK_WORKERS, marks=ALL_CASES),
    ],
)
def test_the_portable_runner_prepares_what_the_direct_runner_does(
    worker_pool, job_service, tmp_path, builder, layout, workers
):
    config, manual_dir, download_dir = "tiny", None, None
    if builder == "synthetic_cohort":
        config, download_dir = SYNTHETIC_CONFIG, str(tmp_path / "downloads")
        shutil.copytree(DUMMY_DATA / GENERATED_FOLDER, tmp_path / "downloads" / GENERATED_FOLDER)
    elif builder == "nihpd" and layout == "release":
        manual_dir = str(_nihpd_release(tmp_path / "release"))
    else:
        manual_dir = str(BUILDERS / builder / "dummy_data")
    arguments = dict(download_dir=download_dir, manual_dir=manual_dir)
    direct = prepare_dataset(builder, config, str(tmp_path / "direct"), **arguments)
    workers_before = worker_pool.log_path.read_text().count(STARTED_WORKER)
    job_port = job_service.port if workers > 1 else None
    portable = prepare_dataset(
        builder,
        config,
        str(tmp_path / "portable"),
        beam_pipeline_options=portable_options(worker_pool.port, job_port, workers),
        **arguments,
    )
    # The pool ran it: `workers` worker processes were started for the job, not the launching process.
    assert worker_pool.log_path.read_text().count(STARTED_WORKER) == workers_before + workers
    differences, compared = compare_prepared(direct.path, portable.path)
    print(f"{direct.name} ({layout}): {compared}")
    assert differences == []
    assert portable.summary == direct.summary  # the counters came back from the worker
