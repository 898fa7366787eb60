"""Stored outputs become KFP artifacts; a component error becomes one line and exit status 1."""

import pytest
from kfp.dsl import Dataset

from brainage_tf.errors import ComponentError
from pipelines.artifacts import ERROR_FILE, failure_reported, publish
from pipelines.store import StoredOutput


def test_publish_points_the_artifact_at_the_store_and_copies_the_metadata(tmp_path):
    artifact = Dataset(name="examples", uri=str(tmp_path / "kfp" / "examples"), metadata={})
    publish(artifact, StoredOutput(tmp_path / "store" / "key", {"dataset": "d/tiny", "reused": True}))
    assert artifact.path == str(tmp_path / "store" / "key")
    assert artifact.metadata == {"dataset": "d/tiny", "reused": True}


def test_a_component_error_is_one_line_a_note_beside_the_outputs_and_exit_1(tmp_path, capsys):
    artifact = Dataset(name="examples", uri=str(tmp_path / "run" / "example-gen" / "examples"))
    with pytest.raises(SystemExit) as exit_info, failure_reported("ExampleGen", artifact):
        raise ComponentError("synthetic_cohort has no config 'huge'")
    assert exit_info.value.code == 1
    message = "ExampleGen failed: synthetic_cohort has no config 'huge'"
    assert capsys.readouterr().err == message + "\n"
    assert (tmp_path / "run" / "example-gen" / ERROR_FILE).read_text() == message + "\n"


def test_other_errors_keep_their_traceback(tmp_path):
    artifact = Dataset(name="examples", uri=str(tmp_path / "examples"))
    with pytest.raises(KeyError), failure_reported("ExampleGen", artifact):
        raise KeyError("a bug, not bad input")
    assert not (tmp_path / ERROR_FILE).exists()
