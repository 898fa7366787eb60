"""Beam's Python job server, run with the SDK-worker parallelism a Flink job server gives.

Flink's job server starts `--sdk_worker_parallelism` SDK workers per task manager and
splits each stage's input between them. Beam 2.77's Python job servers (`job_endpoint=embed`
and `apache_beam.runners.portability.local_job_service_main`) run the job on an FnApiRunner
whose worker count is fixed at 1 (`fn_runner.FnApiRunner.__init__`; only `run_pipeline`,
which a job server never calls, reads `direct_num_workers`), so the pool gets one worker
per job. This server is Beam's `LocalJobServicer` with a job type that gives the runner
`sdk_worker_parallelism` workers: each stage's input is then split between that many
worker processes of the pool, as on a cluster. It is the stand-in for a Flink job server
that the portable-runner tests and benchmarks use (docs/ingest.md); on a real cluster,
the cluster's own job server takes its place.

The FnApiRunner runs in this process and sends stage inputs to the workers over the
time-flushed gRPC stream whose race `brainage_tf.ingest.direct_runner` fixes: the fix is
applied here, where that stream lives. On a Beam release the job type was not tested on,
it runs one worker per job, as Beam's own job server does, with a warning line.

    python -m tfds_builders.job_service --port 8099
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

import apache_beam as beam
from apache_beam.options.pipeline_options import PortableOptions
from apache_beam.portability.api import beam_job_api_pb2
from apache_beam.runners.portability import local_job_service
from apache_beam.runners.portability.fn_api_runner import fn_runner

from brainage_tf.ingest.direct_runner import TESTED_BEAM, serialize_buffered_writes

_LOGGER = logging.getLogger(__name__)


class ParallelWorkersJob(local_job_service.BeamJob):
    """A job whose FnApiRunner runs each stage on `sdk_worker_parallelism` SDK workers."""

    def _invoke_runner(self):
        # As BeamJob._invoke_runner (Beam 2.77), with the runner's worker count set.
        self.set_state(beam_job_api_pb2.JobState.RUNNING)
        options = self.pipeline_options()
        runner = fn_runner.FnApiRunner(provision_info=self._provision_info)
        # Options come back from the job proto as text.
        runner._num_workers = max(1, int(options.view_as(PortableOptions).sdk_worker_parallelism))
        return runner.run_via_runner_api(self._pipeline_proto, options)


def job_type() -> type[local_job_service.BeamJob]:
    """`ParallelWorkersJob` on a Beam it was tested on (with the stream fixed), else Beam's own job."""
    if beam.__version__ in TESTED_BEAM and serialize_buffered_writes():
        return ParallelWorkersJob
    _LOGGER.warning(
        "Beam %s is not a release this job server was tested on (%s): one SDK worker per job, "
        "the data stream unfixed; the builders' accounting checks stop a build that lost rows",
        beam.__version__,
        ", ".join(TESTED_BEAM),
    )
    return local_job_service.BeamJob


def main(argv: list[str] | None = None) -> None:
    """Serves the job API on `--port` until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="Port of the job API (0: any free port).")
    args = parser.parse_args(argv)
    servicer = local_job_service.LocalJobServicer(beam_job_type=job_type())
    port = servicer.start_grpc_server(args.port)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    print(f"job service listening on port {port}", flush=True)  # for whoever started it by hand
    try:
        stopped.wait()
    finally:
        servicer.stop()


if __name__ == "__main__":
    main()
