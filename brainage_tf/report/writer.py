"""`write_report`: the pages of a finished predict run, from its CSV and the montages kept as it ran."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from brainage_tf.errors import UsageError
from brainage_tf.report.charts import normative_chart, trajectory_chart
from brainage_tf.report.pages import RunFacts, index_page, scan_page
from brainage_tf.report.qc_montage import MontageKeeper, montage_file
from brainage_tf.report.scan_rows import ReportScan, read_scans
from brainage_tf.serving.exported_model import ExportedModel
from brainage_tf.serving.scans import ScanItem, item_keys

# Where predict keeps each scan's montage, inside the report folder, until (and after) the pages.
MONTAGE_FOLDER = ".montages"
INDEX = "index.html"


def run_facts(model: ExportedModel) -> RunFacts:
    """What the pages say about the export."""
    conformal = model.metadata.get("conformal") or {}
    level = conformal.get("level") if isinstance(conformal, dict) else None
    reference = model.reference
    return RunFacts(
        model=str(model.metadata.get("model", "")),
        export=str(model.path),
        fingerprint=model.fingerprint,
        interval_level=None if level is None else float(level),
        ncc_min=None if reference is None else reference.registration_ncc_min,
        has_norms=model.normative is not None,
    )


def _chart_age(scan: ReportScan, normed: bool) -> tuple[float, float] | None:
    """(age, the predicted age the chart draws): bias-corrected with norms, as predicted without."""
    age, (_, gap) = scan.value("age"), scan.gap
    if age is None or gap is None or scan.failed:
        return None
    return age, age + gap if normed else scan.value("predicted_age")


def write_report(folder: Path, csv_path: Path, items: Sequence[ScanItem], model: ExportedModel) -> Path:
    """Writes a page per scan and the index into `folder`; returns the index's path.

    Args:
        folder: The report folder (created if missing; pages of an earlier run are replaced).
        csv_path: The run's finished predictions CSV, one row per item in order.
        items: The run's scans.
        model: The export that predicted them (its norms draw the centile bands).
    """
    folder.mkdir(parents=True, exist_ok=True)
    run = run_facts(model)
    scans = read_scans(csv_path, items)
    normed = model.normative is not None
    charted = {scan.index: _chart_age(scan, normed) for scan in scans}
    cohort = [point for point in charted.values() if point is not None]
    by_subject: dict[str, list[ReportScan]] = collections.defaultdict(list)
    for scan in scans:
        subject = scan.row.get("subject_id", "")
        if subject and charted[scan.index] is not None:
            by_subject[subject].append(scan)
    keys = item_keys(items)
    for scan in scans:
        point = charted[scan.index]
        siblings = by_subject.get(scan.row.get("subject_id", ""), []) if point is not None else []
        chart = trajectory = None
        if point is not None:
            chart = normative_chart(model.normative, cohort, [charted[s.index] for s in siblings], point)
        if len(siblings) > 1:
            name = scan.gap[0]
            gaps = [(s.value("age"), s.gap[1]) for s in siblings]
            trajectory = trajectory_chart(model.normative, gaps, (point[0], scan.gap[1]), name)
        kept = montage_file(folder / MONTAGE_FOLDER, keys[scan.index])
        montage = kept.read_bytes() if kept.is_file() else None
        (folder / scan.page).write_text(scan_page(scan, run, chart, trajectory, montage), encoding="utf-8")
    index = folder / INDEX
    index.write_text(index_page(scans, run), encoding="utf-8")
    return index


@dataclasses.dataclass(frozen=True)
class ReportWriter:
    """A predict run's report: `montages` is predict's `on_scan`, `write` makes the pages at the end."""

    folder: Path
    items: Sequence[ScanItem]
    model: ExportedModel
    montages: MontageKeeper

    def write(self, csv_path: Path) -> Path:
        """Writes every page and the index from the finished CSV; returns the index's path."""
        return write_report(self.folder, csv_path, self.items, self.model)


def report_writer(folder: Path, items: Sequence[ScanItem], model: ExportedModel) -> ReportWriter:
    """The report of a run about to start, checked before any scan is worked on.

    Raises:
        UsageError: `folder` is a file, or its parent folder does not exist.
    """
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--report {folder}: is a file, not a folder")
    if not folder.parent.is_dir():
        raise UsageError(f"--report {folder}: folder {folder.parent} does not exist")
    keeper = MontageKeeper(folder / MONTAGE_FOLDER, items, model.preprocess_config)
    return ReportWriter(folder, items, model, keeper)
