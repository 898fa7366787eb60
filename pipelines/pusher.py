"""Pusher's work: copy a blessed export into a TF Serving model folder as the next version.

```
<serving_dir>/<version>/   saved_model.pb, variables/, assets/ (python -m brainage_tf.export's layout)
                           push.json: the model's and the blessing's fingerprints, the evaluation
```

A version is staged beside its target and renamed into place, so TF Serving never
sees half a model, and an existing version is never replaced. Without a blessing
nothing is written to the serving folder. A model that already serves (same
content fingerprint) is not pushed again.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from brainage_tf.errors import ComponentError
from brainage_tf.serving.metadata import next_version, version_folders
from pipelines.store import OutputStore, StoredOutput, content_fingerprint, work_fingerprint

COMPONENT = "Pusher"
PUSH_RECORD = "push.json"
DECISION_FILE = "push_decision.json"
# The TFX convention: the Evaluator's blessing folder holds one of these files.
BLESSED, NOT_BLESSED = "BLESSED", "NOT_BLESSED"
# Files of a run directory that an export (best checkpoint) reads, plus the Evaluator's calibration.
RUN_FILES = ("config.json", "best_model.keras", "results.json")
CALIBRATION = "calibration.json"


def pushed_versions(serving_dir: str | Path) -> list[tuple[int, dict]]:
    """(version, push record) of every version the Pusher wrote into a serving folder, oldest first."""
    return [
        (version, json.loads((folder / PUSH_RECORD).read_text()))
        for version, folder in version_folders(serving_dir)
        if (folder / PUSH_RECORD).is_file()
    ]


def serving_baseline(serving_dir: str | Path, model_fingerprint: str) -> tuple[int, Path, str] | None:
    """The model a candidate must not be worse than: the newest version serving another model.

    Versions holding the candidate itself are passed over, so a pushed model does not
    become its own baseline and a rerun of the same pipeline reuses its evaluation.
    A version written by hand (no push record) counts, fingerprinted by its content.

    Returns:
        (version, its folder, its model fingerprint), or None when no other model serves.
    """
    for version, folder in reversed(version_folders(serving_dir)):
        record = folder / PUSH_RECORD
        fingerprint = (
            json.loads(record.read_text()).get("model_fingerprint")
            if record.is_file()
            else content_fingerprint(folder)
        )
        if fingerprint != model_fingerprint:
            return version, folder, fingerprint
    return None


def is_blessed(blessing_path: str | Path, blessing_metadata: Mapping[str, Any]) -> bool:
    """True only when the blessing folder holds BLESSED and its metadata agrees."""
    return (Path(blessing_path) / BLESSED).is_file() and blessing_metadata.get("blessed") is True


def push_export(run_dir: Path, calibration: Path, serving_dir: Path, record: dict) -> int:
    """Exports a run with the given calibration into `serving_dir/<next version>`; returns the version.

    Raises:
        ComponentError: The next version folder exists when the export is renamed into place.
    """
    from brainage_tf.serving.export import export_run

    serving_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(serving_dir)
    target = serving_dir / str(version)
    with tempfile.TemporaryDirectory(prefix=f".push-{version}-", dir=serving_dir) as staging:
        run_copy = Path(staging) / "run"
        run_copy.mkdir()
        for name in RUN_FILES:
            shutil.copy2(run_dir / name, run_copy / name)
        shutil.copy2(calibration, run_copy / CALIBRATION)
        exported = export_run(run_copy, version=1)
        (exported / PUSH_RECORD).write_text(json.dumps({**record, "version": version}, indent=2) + "\n")
        if target.exists():
            raise ComponentError(f"{target} appeared during the push; versions are never overwritten.")
        exported.rename(target)
    return version


def run(
    store_dir: str,
    model_path: str,
    model_metadata: Mapping[str, Any],
    blessing_path: str,
    blessing_metadata: Mapping[str, Any],
    serving_dir: str,
) -> StoredOutput:
    """Pushes a blessed model as the next version of a serving folder (or records why not).

    Args:
        store_dir: The output store (the push decision is kept there).
        model_path: Trainer's run directory.
        model_metadata: Trainer's artifact metadata.
        blessing_path: Evaluator's blessing folder.
        blessing_metadata: Evaluator's blessing metadata.
        serving_dir: TF Serving model folder (`--model_base_path`).

    Returns:
        The `pushed_model` output: the decision file; its metadata says `pushed`, the
        `version` serving this model and the `serving_path`, or the `reason` for no push.

    Raises:
        ComponentError: A blessing of another model, or a version that appeared meanwhile.
    """
    model_fingerprint = model_metadata["content_fingerprint"]
    inputs = {"model": model_fingerprint, "blessing": blessing_metadata["content_fingerprint"]}

    def push(folder: Path) -> dict:
        decision: dict[str, Any] = {"pushed": False, "version": None, "serving_path": None}
        serving = {
            record.get("model_fingerprint"): version for version, record in pushed_versions(serving_dir)
        }
        if not is_blessed(blessing_path, blessing_metadata):
            decision["reason"] = (
                f"not blessed: {'; '.join(blessing_metadata.get('reasons', [])) or 'no blessing'}"
            )
        elif blessing_metadata.get("model_fingerprint") != model_fingerprint:
            raise ComponentError("the blessing is for another model than the one given; nothing pushed.")
        elif model_fingerprint in serving:
            version = serving[model_fingerprint]
            decision.update(version=version, reason=f"this model already serves as version {version}")
        else:
            record = {
                "model_fingerprint": model_fingerprint,
                "blessing_fingerprint": inputs["blessing"],
                "evaluation": {key: blessing_metadata.get(key) for key in ("dataset", "split", "mae")},
            }
            version = push_export(
                Path(model_path), Path(blessing_path) / CALIBRATION, Path(serving_dir), record
            )
            decision.update(pushed=True, version=version, reason="blessed")
        if decision["version"] is not None:
            decision["serving_path"] = str(Path(serving_dir) / str(decision["version"]))
        outcome = f"pushed version {decision['version']}" if decision["pushed"] else "no push"
        print(f"{COMPONENT}: {outcome} ({decision['reason']})")
        (folder / DECISION_FILE).write_text(json.dumps(decision, indent=2) + "\n")
        return {"pushed_model": (DECISION_FILE, decision)}

    parameters = {"serving_dir": str(Path(serving_dir).resolve())}
    store = OutputStore(store_dir)
    earlier = store.lookup(COMPONENT, work_fingerprint(COMPONENT, parameters, inputs))
    served = earlier and earlier["pushed_model"].metadata.get("serving_path")
    if served and not Path(served).is_dir():  # removed from the serving dir since: decide again
        store.forget(COMPONENT, work_fingerprint(COMPONENT, parameters, inputs))
    return store.run_or_reuse(COMPONENT, parameters, inputs, push)["pushed_model"]
