"""Tests of the synthetic_cohort builder, including a 2-worker multi-processing Beam build."""

import csv
import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds
from apache_beam.options.pipeline_options import PipelineOptions

from brainage_tf import data
from brainage_tf.ingest import INGEST_SUMMARY_NAME, IngestSummary
from brainage_tf.preprocessing_record import preprocessing_record
from brainage_tf.synthetic.spec import CohortSpec
from tfds_builders import cohort_builder
from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import (
    GENERATED_FOLDER,
    Builder,
    SyntheticConfig,
    cohort_folder_name,
    ensure_generated,
)

# Small cohorts with coarse voxels so dummy_data stays ~1 MB; longitudinal (2 visits).
TEST_CONFIG = SyntheticConfig(
    name="tiny_test",
    grid="tiny",
    registration="none",
    discovery_subjects=5,
    replication_subjects=2,
    sessions=2,
    voxel_scale=3.9,
    generator_workers=1,
    progress_seconds=0.5,  # a few progress lines during the multi-process build; the data do not depend on it
)
DUMMY_DATA = Path(__file__).resolve().parent / "dummy_data"
# The 80/20 split of the 5 discovery subjects, worked out by hand from their first-visit ages
# (participants.tsv) and 1-year bins: bins 0, 1 and 3 hold 2, 1 and 2 subjects, so the running
# total round(0.2 * n) gives test 0, 1 and 0 subjects; sub-0002 is alone in bin 1.
DISCOVERY_SPLITS = {"sub-0001": "train", "sub-0002": "test", "sub-0003": "train", "sub-0004": "train",
                    "sub-0005": "train"}  # fmt: skip


class SyntheticCohortTest(tfds.testing.DatasetBuilderTestCase):
    """Builds the test config from the generated BIDS folders in dummy_data."""

    DATASET_CLASS = Builder
    BUILDER_CONFIG_NAMES_TO_TEST = [TEST_CONFIG]
    SPLITS = {"train": 8, "test": 2, "replication": 4}
    SKIP_CHECKSUMS = True


@pytest.mark.slow
def test_multiprocessing_build_reads_back_with_right_shapes_and_labels(tmp_path):
    """Generates the cohorts afresh, builds with 2 DirectRunner processes, loads with tfds.load."""
    beam_options = PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    builder = Builder(config=TEST_CONFIG, data_dir=str(tmp_path / "data"))
    with mock.patch.object(cohort_builder.logging, "info") as log_info:
        builder.download_and_prepare(
            download_dir=str(tmp_path / "downloads"),
            download_config=tfds.download.DownloadConfig(beam_options=beam_options),
        )
    # The worker processes mark the rows they finish; this process counts the marks into its lines.
    progress = [call.args[1] for call in log_info.call_args_list if "scans done" in str(call.args[-1])]
    assert len(progress) >= 2 and progress[-1].startswith("synthetic_cohort: 14 of 14 scans done (0 skipped)")

    generated = tmp_path / "downloads" / GENERATED_FOLDER
    expected_labels = {}
    for profile, arguments in TEST_CONFIG.cohorts():
        folder = generated / cohort_folder_name(arguments)
        committed = DUMMY_DATA / GENERATED_FOLDER / cohort_folder_name(arguments)
        assert (folder / "participants.tsv").read_text() == (committed / "participants.tsv").read_text()
        for sessions in sorted(folder.glob("sub-*/sub-*_sessions.tsv")):
            subject = sessions.parent.name
            split = DISCOVERY_SPLITS[subject] if profile == "discovery" else "replication"
            with sessions.open() as handle:
                for row in csv.DictReader(handle, delimiter="\t"):
                    expected_labels[(split, subject, row["session_id"])] = float(row["age"])
    assert len(expected_labels) == sum(SyntheticCohortTest.SPLITS.values())

    loaded_labels = {}
    for split in ("train", "test", "replication"):
        dataset = tfds.load(
            "synthetic_cohort",
            split=split,
            data_dir=str(tmp_path / "data"),
            builder_kwargs={"config": TEST_CONFIG},
            download=False,
        )
        for example in tfds.as_numpy(dataset):
            assert example["volume"].shape == (24, 30, 21)
            assert example["volume"].dtype == np.float16
            assert np.isfinite(example["volume"]).all()
            key = (split, example["subject_id"].decode(), example["session"].decode())
            loaded_labels[key] = float(example["age"])
    assert loaded_labels.keys() == expected_labels.keys()
    for key, age in expected_labels.items():
        assert loaded_labels[key] == pytest.approx(age, abs=1e-4)

    # The prepared folder records its preprocessing, and the data layer reads it from the files.
    record = preprocessing_record(TEST_CONFIG.preprocess_config)
    metadata = json.loads((Path(builder.data_path) / "metadata.json").read_text())
    assert metadata == {"preprocessing": record} and record["grid"] == "tiny"
    source = data.tfds_source(f"synthetic_cohort/{TEST_CONFIG.name}", "train", str(tmp_path / "data"))
    assert source.preprocessing == record

    summary = IngestSummary.read(Path(builder.data_path) / INGEST_SUMMARY_NAME)
    rows_in = len(expected_labels)
    assert (summary.rows_in, summary.examples_written, summary.skipped) == (rows_in, rows_in, 0)
    report = Path(builder.data_path) / summary.skip_report
    with report.open() as handle:
        assert list(csv.reader(handle, delimiter="\t")) == [["path", "subject", "reason"]]


def test_experiment_configs_draw_an_nihpd_shaped_discovery_cohort():
    configs = {config.name: config for config in Builder.BUILDER_CONFIGS}
    for name in ("experiment", "experiment_tiny"):
        (_, discovery), (_, replication) = configs[name].cohorts()
        assert discovery.age_distribution == "nihpd" and discovery.sessions > 1
        assert replication.age_distribution == "log_uniform" and replication.sessions == 1
        assert cohort_folder_name(discovery).endswith("_nihpd")
    # The default configs keep their generated folders' names.
    assert cohort_folder_name(configs["small"].cohorts()[0][1]) == "discovery_n160_age0-22_ses1_seed0_vox1"


def test_a_cohort_generated_before_the_ground_truth_was_listed_is_generated_again(tmp_path):
    spec = CohortSpec(1, min_age=2.0, max_age=3.0, voxel_scale=3.9)
    old = tmp_path / cohort_folder_name(spec)
    old.mkdir()
    (old / "participants.tsv").write_text("participant_id\tage\tsex\tsite\nsub-0001\t2.5\tM\tdisc-a\n")
    folder = ensure_generated(tmp_path, spec, workers=1)
    header = (Path(folder) / "participants.tsv").read_text().splitlines()[0].split("\t")
    assert header[-2:] == ["tempo", "developmental_age"] and Path(folder) == old
    stamp = (old / "participants.tsv").stat().st_mtime_ns
    assert ensure_generated(tmp_path, spec, workers=1) == folder  # a complete one is reused
    assert (old / "participants.tsv").stat().st_mtime_ns == stamp
