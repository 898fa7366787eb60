"""The job server gives the FnApiRunner `sdk_worker_parallelism` workers only on a Beam it was tested on."""

import logging

from apache_beam.runners.portability import local_job_service

from tfds_builders import job_service


def test_a_tested_beam_runs_parallel_workers_jobs():
    assert job_service.job_type() is job_service.ParallelWorkersJob


def test_an_untested_beam_runs_beams_own_job_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(job_service, "TESTED_BEAM", {})
    with caplog.at_level(logging.WARNING):
        assert job_service.job_type() is local_job_service.BeamJob
    assert "one SDK worker per job" in caplog.text
