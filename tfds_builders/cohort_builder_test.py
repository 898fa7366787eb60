"""The cohort builders: the voxel limit of their configs, and no ingest finished with a row lost."""

import re
import shutil
from pathlib import Path

import apache_beam as beam
import pytest
import tensorflow_datasets as tfds

from brainage_tf.errors import IngestError
from brainage_tf.ingest import INGEST_SUMMARY_NAME, IngestSummary
from brainage_tf.ingest import beam as ingest_beam
from brainage_tf.preprocessing import MAX_SCAN_VOXELS
from tfds_builders.cohort_builder import CohortBuilder, CohortConfig
from tfds_builders.mghbch.mghbch_dataset_builder import Builder as MghbchBuilder
from tfds_builders.nihpd.nihpd_dataset_builder import Builder
from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import SyntheticConfig

MGHBCH_DUMMY_DATA = Path(__file__).resolve().parent / "mghbch" / "dummy_data"


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


def test_a_build_whose_files_hold_fewer_examples_than_were_written_is_not_kept(tmp_path, monkeypatch):
    """One example counted as written never reaches the files, as when the runner drops a stage input."""
    manual_dir = tmp_path / "manual"
    (manual_dir / "t1").mkdir(parents=True)
    for scan in ("mghbch_1001_V1_t1w.mnc", "mghbch_1003_V1_t1w.nii.gz"):
        shutil.copy(MGHBCH_DUMMY_DATA / "t1" / scan, manual_dir / "t1" / scan)
    (manual_dir / "demographics.csv").write_text("subject_id,visit,age_days\n1001,V1,400\n1003,V1,1500\n")

    def losing_one(self, ingested, split):
        lost = beam.Filter(lambda key_example: key_example[0] != "mghbch/1003/V1")
        return ingested[split] | f"Lose_{split}" >> lost

    monkeypatch.setattr(CohortBuilder, "_generate_examples", losing_one)
    builder = MghbchBuilder(config="tiny", data_dir=str(tmp_path / "data"))
    message = (
        "mghbch: 2 examples written but 1 stored (test 1): 1 lost between the ingest and the files; "
        "the Beam runner lost them, so the build stopped"
    )
    with pytest.raises(IngestError, match=f"^{re.escape(message)}"):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    assert not builder.data_path.exists()
