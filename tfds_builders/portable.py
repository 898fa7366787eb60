"""The cluster path on one machine: Beam's portable runner with a pool of SDK worker processes.

Flink, Spark and Dataflow run a Python pipeline the same way: translated to Beam's
portable representation, its DoFns pickled and run in separate SDK worker processes
that talk to the runner over the Fn API. `WorkerPool` starts Beam's own pool of such
workers (`python -m apache_beam.runners.worker.worker_pool_main`), and
`portable_options(port)` names the PortableRunner with its embedded job server and
that pool, in the form `tfds build --beam_pipeline_options` takes. `compare_prepared`
tells whether two builds of one config prepared the same dataset. The portable-runner
test and `benchmarks/ingest_build.py --portable` use them (docs/ingest.md).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from brainage_tf.ingest.summary import INGEST_SUMMARY_NAME, SKIP_REPORT_NAME

# What the workers import: the folder that holds brainage_tf and tfds_builders.
SOURCE_ROOT = Path(__file__).resolve().parent.parent
# Seconds a service may take to listen; it imports Beam and gRPC first.
SERVICE_START_TIMEOUT_S = 60


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def portable_options(pool_port: int, job_port: int | None = None, workers: int = 1) -> str:
    """`--beam_pipeline_options` text for the PortableRunner with the SDK worker pool at `pool_port`.

    Args:
        pool_port: Port of a `WorkerPool`.
        job_port: Port of a `JobService`; None runs Beam's embedded job server, which asks
            the pool for one worker per job.
        workers: SDK workers per job (`sdk_worker_parallelism`); needs `job_port`.
    """
    pool = f"environment_type=EXTERNAL,environment_config=localhost:{pool_port}"
    if job_port is None:
        if workers != 1:
            raise ValueError("Beam's embedded job server runs one SDK worker per job; give a job_port")
        return f"runner=PortableRunner,job_endpoint=embed,{pool}"
    return f"runner=PortableRunner,job_endpoint=localhost:{job_port},sdk_worker_parallelism={workers},{pool}"


class ServiceProcess:
    """A Python module serving on a port, as a child process group stopped with its children by `stop`."""

    def __init__(self, module: str, port: int, log_path: Path, port_flag: str = "--port"):
        """Starts `python -m module <port_flag>=port` and waits until it listens.

        Args:
            module: The module to run.
            port: The port it serves on.
            log_path: File for its and its children's output.
            port_flag: The module's flag for the port.

        Raises:
            RuntimeError: The process exited or did not listen within SERVICE_START_TIMEOUT_S.
        """
        self.module = module
        self.port = port
        self.log_path = log_path
        # Children (the pool's workers) start as `python -c ...`: this Python first on PATH,
        # this source on sys.path.
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
        with open(log_path, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", module, f"{port_flag}={port}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: `stop` reaches the processes it started
            )
        try:
            self._wait_until_listening()
        except RuntimeError:
            self.stop()
            raise

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                raise RuntimeError(f"{self.module} exited with {code}; see {self.log_path}")
            with socket.socket() as probe:
                if probe.connect_ex(("localhost", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.module} did not listen on port {self.port}; see {self.log_path}")

    @property
    def pid(self) -> int:
        """The process's id (its process group's too)."""
        return self._process.pid

    def stop(self) -> None:
        """Ends the process and every process it started (its process group); safe to call twice."""
        if self._process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._process.wait()
        self._signal(signal.SIGKILL)  # workers outlive a pool that exited

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self._process.pid, signum)
        except ProcessLookupError:
            pass


class WorkerPool(ServiceProcess):
    """Beam's pool of SDK worker processes (`worker_pool_main`), which starts a worker per request."""

    def __init__(self, port: int, log_path: Path):
        super().__init__("apache_beam.runners.worker.worker_pool_main", port, log_path, "--service_port")


class JobService(ServiceProcess):
    """`tfds_builders.job_service`: Beam's job server with `sdk_worker_parallelism` workers per job."""

    def __init__(self, port: int, log_path: Path):
        super().__init__("tfds_builders.job_service", port, log_path)


def prepared_contents(folder: Path) -> dict:
    """What a prepared dataset holds, comparable across runners.

    Returns:
        examples: split -> {(subject_id, session, source_path): the record re-serialised with
        deterministic field order}; skip_report: the report's text; summary: ingest_summary.json;
        splits: split -> examples per dataset_info.json.
    """
    import tensorflow as tf

    examples: dict[str, dict[tuple[str, str, str], bytes]] = {}
    for path in sorted(folder.glob("*.tfrecord-*")):
        split = path.name.split("-")[1].split(".")[0]
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            example = tf.train.Example.FromString(record)
            feature = example.features.feature
            key = tuple(
                feature[name].bytes_list.value[0].decode()
                for name in ("subject_id", "session", "source_path")
            )
            examples.setdefault(split, {})[key] = example.SerializeToString(deterministic=True)
    info = json.loads((folder / "dataset_info.json").read_text())
    return {
        "examples": examples,
        "skip_report": (folder / SKIP_REPORT_NAME).read_text(),
        "summary": json.loads((folder / INGEST_SUMMARY_NAME).read_text()),
        "splits": {
            split["name"]: sum(int(n) for n in split.get("shardLengths", [])) for split in info["splits"]
        },
    }


def compare_prepared(expected: Path, actual: Path) -> tuple[list[str], str]:
    """Compares two prepared folders of one config.

    Returns:
        (differences, one line saying what was compared); no differences when the datasets are equal.
    """
    first, second = prepared_contents(expected), prepared_contents(actual)
    differences = [
        f"{part} differs" for part in ("skip_report", "summary", "splits") if first[part] != second[part]
    ]
    for split in sorted(set(first["examples"]) | set(second["examples"])):
        ours, theirs = first["examples"].get(split, {}), second["examples"].get(split, {})
        if ours.keys() != theirs.keys():
            differences.append(f"{split}: keys {sorted(ours.keys() ^ theirs.keys())} in one build only")
        changed = sorted(key for key in ours.keys() & theirs.keys() if ours[key] != theirs[key])
        if changed:
            differences.append(f"{split}: {len(changed)} examples differ, e.g. {changed[0]}")
    counts = ", ".join(f"{split} {len(keyed)}" for split, keyed in sorted(first["examples"].items()))
    volume_bytes = sum(len(record) for keyed in first["examples"].values() for record in keyed.values())
    skips = first["skip_report"].count("\n") - 1
    summary = first["summary"]
    line = (
        f"examples per split {counts}; keys and {volume_bytes} bytes of re-serialised records "
        f"{'equal' if not differences else 'NOT equal'}; skip report ({skips} rows), dataset_info splits and "
        f"ingest summary ({summary['rows_in']} in, {summary['examples_written']} written, "
        f"{summary['skipped']} skipped) {'equal' if not differences else 'compared'}"
    )
    return differences, line
