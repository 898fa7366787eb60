"""The cohort builders refuse to finish an ingest whose counts lose a row."""

import pytest

from brainage_tf.ingest import INGEST_SUMMARY_NAME, IngestSummary
from brainage_tf.ingest import beam as ingest_beam
from brainage_tf.ingest.skips import IngestError
from tfds_builders.nihpd.nihpd_dataset_builder import Builder


@pytest.mark.parametrize("written, fails", [(952, True), (971, False)])
def test_a_run_that_loses_rows_stops_before_the_dataset_is_finalized(tmp_path, monkeypatch, written, fails):
    builder = Builder(config="tiny", data_dir=str(tmp_path))
    builder._rows_listed = 971
    monkeypatch.setattr(ingest_beam, "summarize", lambda result: IngestSummary(971, written, 0, {}))
    builder.data_path.mkdir(parents=True)
    if fails:
        with pytest.raises(IngestError, match=r"^nihpd: 971 rows listed, .* 19 rows are neither written nor"):
            builder._process_pipeline_result(pipeline_result=None)
        assert not (builder.data_path / INGEST_SUMMARY_NAME).exists()
    else:
        builder._process_pipeline_result(pipeline_result=None)
        assert IngestSummary.read(builder.data_path / INGEST_SUMMARY_NAME).examples_written == 971
