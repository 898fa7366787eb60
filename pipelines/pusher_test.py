"""The Pusher: next integer version, never an overwrite, nothing without a blessing (export faked: no TF)."""

import json
from pathlib import Path

import pytest

from brainage_tf.errors import ComponentError
from brainage_tf.serving import export
from brainage_tf.serving.metadata import version_folders
from pipelines import pusher


def fake_export_run(run_dir, version=None, checkpoint="best"):
    """Stands in for export_run: a version folder whose bytes say which model and calibration it holds."""
    target = Path(run_dir) / "export" / str(version)
    target.mkdir(parents=True)
    model = (Path(run_dir) / "best_model.keras").read_bytes()
    (target / "saved_model.pb").write_bytes(model + (Path(run_dir) / "calibration.json").read_bytes())
    return target


@pytest.fixture
def faked_export(monkeypatch):
    monkeypatch.setattr(export, "export_run", fake_export_run)


def make_model(root: Path, name: str) -> tuple[str, dict]:
    run = root / name
    run.mkdir(parents=True)
    for file in pusher.RUN_FILES:
        (run / file).write_text(f"{name} {file}")
    return str(run), {"content_fingerprint": f"fp-{name}"}


def make_blessing(root: Path, model_metadata: dict, blessed: bool = True) -> tuple[str, dict]:
    folder = root / f"blessing-{model_metadata['content_fingerprint']}-{blessed}"
    folder.mkdir(parents=True)
    (folder / (pusher.BLESSED if blessed else pusher.NOT_BLESSED)).touch()
    (folder / pusher.CALIBRATION).write_text('{"n_validation": 3}')
    metadata = {
        "blessed": blessed,
        "reasons": [] if blessed else ["MAE 4.100 y is above the maximum 3 y"],
        "model_fingerprint": model_metadata["content_fingerprint"],
        "content_fingerprint": f"blessing-{model_metadata['content_fingerprint']}-{blessed}",
        "dataset": "synthetic_cohort/tiny",
        "split": "test",
        "mae": 1.5,
    }
    return str(folder), metadata


def push(tmp_path, model, blessing, serving):
    return pusher.run(str(tmp_path / "store"), *model, *blessing, str(serving))


def test_pushes_as_the_next_integer_version_and_records_the_model(tmp_path, faked_export):
    serving = tmp_path / "serving"
    for version in ("1", "2"):  # versions exported by hand earlier
        (serving / version).mkdir(parents=True)
    model_a = make_model(tmp_path, "a")
    pushed = push(tmp_path, model_a, make_blessing(tmp_path, model_a[1]), serving)
    assert pushed.metadata["pushed"] is True and pushed.metadata["version"] == 3
    assert pushed.metadata["serving_path"] == str(serving / "3")
    assert (serving / "3" / "saved_model.pb").read_bytes() == b'a best_model.keras{"n_validation": 3}'
    record = json.loads((serving / "3" / pusher.PUSH_RECORD).read_text())
    assert record["model_fingerprint"] == "fp-a" and record["version"] == 3
    assert sorted(p.name for p in serving.iterdir()) == ["1", "2", "3"]  # staging folder gone

    model_b = make_model(tmp_path, "b")
    assert push(tmp_path, model_b, make_blessing(tmp_path, model_b[1]), serving).metadata["version"] == 4
    # The same pushed inputs again: reused, and no fifth version.
    again = push(tmp_path, model_b, make_blessing(tmp_path / "again", model_b[1]), serving)
    assert again.metadata["reused"] is True and again.metadata["version"] == 4
    assert sorted(p.name for p in serving.iterdir()) == ["1", "2", "3", "4"]


def test_only_folders_named_by_a_whole_number_are_versions(tmp_path, faked_export):
    serving = tmp_path / "serving"
    for name in ("2", "10", "1", "\u00b2", ".push-11-x", "notes"):  # "\u00b2" (superscript 2) is a digit
        (serving / name).mkdir(parents=True)
    (serving / "12").write_text("a file, not a version")
    assert [(version, folder.name) for version, folder in version_folders(serving)] == [
        (1, "1"),
        (2, "2"),
        (10, "10"),
    ]
    model = make_model(tmp_path, "a")
    assert push(tmp_path, model, make_blessing(tmp_path, model[1]), serving).metadata["version"] == 11
    assert pusher.serving_baseline(serving, "fp-a")[0] == 10


def test_a_model_already_serving_is_not_pushed_twice(tmp_path, faked_export):
    serving, model = tmp_path / "serving", make_model(tmp_path, "a")
    push(tmp_path, model, make_blessing(tmp_path, model[1]), serving)
    other_blessing = make_blessing(tmp_path / "stricter", model[1])
    other_blessing[1]["content_fingerprint"] = "a stricter blessing of the same model"
    decision = push(tmp_path, model, other_blessing, serving).metadata
    assert (decision["pushed"], decision["version"]) == (False, 1)
    assert decision["reason"] == "this model already serves as version 1"
    assert sorted(p.name for p in serving.iterdir()) == ["1"]


@pytest.mark.parametrize("how", ["not blessed", "no BLESSED file", "metadata not blessed"])
def test_nothing_is_written_without_a_blessing(tmp_path, faked_export, how):
    serving, model = tmp_path / "serving", make_model(tmp_path, "a")
    (serving / "1").mkdir(parents=True)
    blessing = make_blessing(tmp_path, model[1], blessed=how != "not blessed")
    if how == "no BLESSED file":
        (Path(blessing[0]) / pusher.BLESSED).unlink()
    if how == "metadata not blessed":
        blessing[1]["blessed"] = False
    decision = push(tmp_path, model, blessing, serving).metadata
    assert decision["pushed"] is False and decision["version"] is None
    assert decision["reason"].startswith("not blessed")
    assert [p.name for p in serving.iterdir()] == ["1"] and not any((serving / "1").iterdir())


def test_a_blessing_of_another_model_is_refused(tmp_path, faked_export):
    serving, model, other = tmp_path / "serving", make_model(tmp_path, "a"), make_model(tmp_path, "b")
    with pytest.raises(ComponentError, match="blessing is for another model"):
        push(tmp_path, model, make_blessing(tmp_path, other[1]), serving)
    assert not serving.exists()


def test_a_version_that_appears_during_the_push_is_never_overwritten(tmp_path, faked_export, monkeypatch):
    serving, model = tmp_path / "serving", make_model(tmp_path, "a")
    (serving / "1").mkdir(parents=True)
    (serving / "1" / "saved_model.pb").write_bytes(b"served by another writer")
    monkeypatch.setattr(pusher, "next_version", lambda folder: 1)  # a writer that raced us to 1
    with pytest.raises(ComponentError, match="appeared during the push; versions are never overwritten"):
        push(tmp_path, model, make_blessing(tmp_path, model[1]), serving)
    assert (serving / "1" / "saved_model.pb").read_bytes() == b"served by another writer"
    assert sorted(p.name for p in serving.iterdir()) == ["1"]


def test_a_pushed_version_removed_since_is_pushed_again(tmp_path, faked_export):
    serving, model = tmp_path / "serving", make_model(tmp_path, "a")
    blessing = make_blessing(tmp_path, model[1])
    push(tmp_path, model, blessing, serving)
    (serving / "1" / pusher.PUSH_RECORD).unlink()
    (serving / "1" / "saved_model.pb").unlink()
    (serving / "1").rmdir()
    again = push(tmp_path, model, blessing, serving).metadata
    assert (again["reused"], again["pushed"], again["version"]) == (False, True, 1)


def test_the_baseline_is_the_newest_version_serving_another_model(tmp_path, faked_export):
    serving = tmp_path / "serving"
    assert pusher.serving_baseline(serving, "fp-a") is None
    model_a, model_b = make_model(tmp_path, "a"), make_model(tmp_path, "b")
    push(tmp_path, model_b, make_blessing(tmp_path, model_b[1]), serving)  # version 1: b
    push(tmp_path, model_a, make_blessing(tmp_path, model_a[1]), serving)  # version 2: a
    assert pusher.serving_baseline(serving, "fp-a") == (1, serving / "1", "fp-b")
    assert pusher.serving_baseline(serving, "fp-b") == (2, serving / "2", "fp-a")
    (serving / "3").mkdir()  # exported by hand: no push record, fingerprinted by content
    (serving / "3" / "saved_model.pb").write_bytes(b"hand export")
    version, folder, fingerprint = pusher.serving_baseline(serving, "fp-a")
    assert (version, folder) == (3, serving / "3") and fingerprint not in ("fp-a", "fp-b")
