"""The folder of a resumable experiment command (`paper_experiment`, `site_adaptation`): its plan and log.

A command writes its flags' plan as `experiment.json` in its folder; a rerun with the same
plan resumes there, and any other plan is refused before any work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from brainage_tf.errors import UsageError

PLAN_NAME = "experiment.json"


def check_experiment_folder(out: Path, plan: dict, ignored: Sequence[str] = ()) -> None:
    """A new or empty folder, or one whose plan equals `plan` but for the `ignored` keys; else UsageError."""
    saved = out / PLAN_NAME
    if saved.is_file():
        recorded = json.loads(saved.read_text())
        if any(recorded.get(key) != plan.get(key) for key in {*recorded, *plan} - set(ignored)):
            raise UsageError(f"{out} holds an experiment with other flags ({saved}); choose another --out.")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an experiment folder; choose a new --out.")


def write_plan(out: Path, plan: dict) -> None:
    """Creates the folder and records the plan a rerun must match."""
    out.mkdir(parents=True, exist_ok=True)
    (out / PLAN_NAME).write_text(json.dumps(plan, indent=2) + "\n")


def minute_log() -> Callable[[str], None]:
    """A printer that stamps each line with the minutes since it was made (long runs read as a log)."""
    started = time.perf_counter()

    def log(line: str) -> None:
        print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {line}", flush=True)

    return log
