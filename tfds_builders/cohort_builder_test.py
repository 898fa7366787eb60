"""The cohort builders: the voxel limit of their configs, and no ingest finished with a row lost."""

import pytest

from brainage_tf.errors import IngestError
from brainage_tf.ingest import INGEST_SUMMARY_NAME, IngestSummary
from brainage_tf.ingest import beam as ingest_beam
from brainage_tf.preprocessing import MAX_SCAN_VOXELS
from tfds_builders.cohort_builder import CohortConfig
from tfds_builders.nihpd.nihpd_dataset_builder import Builder
from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import SyntheticConfig


def test_a_configs_voxel_limit_reaches_its_preprocess_config():
    assert CohortConfig(name="a", grid="small", registration="none").preprocess_config.max_voxels == (
        MAX_SCAN_VOXELS
    )
    raised = CohortConfig(name="b", grid="paper", registration="affine", max_voxels=400_000_000)
    assert raised.preprocess_config.max_voxels == 400_000_000
    assert (raised.preprocess_config.grid, raised.preprocess_config.registration) == ("paper", "affine")
    synthetic = SyntheticConfig(name="c", grid="tiny", registration="none", max_voxels=1000)
    assert synthetic.preprocess_config.max_voxels == 1000
    with pytest.raises(ValueError, match="max_voxels must be a positive whole number, got -1"):
        CohortConfig(name="d", grid="small", registration="none", max_voxels=-1)


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
