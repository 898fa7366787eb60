"""Rows on disk as scans finish, a resume that keeps them, and the CSV of one uninterrupted run.

A batch command writes its output CSV `OUT` in three files:

* `OUT.partial`: JSON lines, appended and flushed to disk as each scan finishes. The
  first line is the run's provenance (which export, its fingerprint, the settings),
  every other line one finished row: its key (`brainage_tf.serving.scans.item_keys`)
  and its CSV cells. A kill can tear only the last line, which is then ignored.
* `OUT` itself, written at the end in the input order, atomically (a temporary file
  renamed), so an `OUT` that exists is complete.
* the sidecar `OUT` with suffix `.json`: the provenance, the counts and each row's key.

A resume keeps the ok rows of a partial or of a complete output written with the
same identity (tool, export fingerprint, settings, columns) and drops failed ones, so
they are tried again. Cells are formatted once, when a row finishes, so the CSV
after any number of kills and resumes is the one an uninterrupted run writes.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from brainage_tf.errors import UsageError

OK, FAILED = "ok", "failed"
PARTIAL_SUFFIX = ".partial"
# What must match for a resume to keep earlier rows.
IDENTITY_KEYS = ("tool", "export_fingerprint", "settings", "columns")


def cell(value) -> str:
    """One CSV cell: "" for None, 6 decimals for finite floats, nan/inf spelled out."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value) if math.isinf(value) else f"{value:.6f}"
    return str(value)


def sidecar_path(out: Path) -> Path:
    """The provenance file beside an output CSV: `ages.csv` -> `ages.json`."""
    return out.with_suffix(".json")


def _atomic_write(path: Path, text: str) -> None:
    """Writes through a temporary file renamed into place, so `path` is never half-written."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class ResultJournal:
    """The output of one batch command: rows appended as they finish, the CSV written at the end."""

    def __init__(self, out: Path, columns: Sequence[str], provenance: Mapping, resume: bool):
        """Opens the journal; with `resume`, keeps the ok rows of an earlier run of the same identity.

        Args:
            out: The CSV to write.
            columns: Its columns; `status` is one of them.
            provenance: JSON-ready facts about the run; its IDENTITY_KEYS decide what a resume may keep.
            resume: Continue an earlier run's output (nothing to continue is fine).

        Raises:
            UsageError: Output exists without `resume`; or a resume of an output written with
                another export or settings, or one this package did not write.
        """
        self.out, self.columns = Path(out), list(columns)
        self.partial = self.out.with_name(self.out.name + PARTIAL_SUFFIX)
        self.sidecar = sidecar_path(self.out)
        self.provenance = {**provenance, "columns": self.columns}
        existing = [path for path in (self.partial, self.out) if path.exists()]
        if existing and not resume:
            raise UsageError(
                f"{existing[0]} exists: pass --resume to continue it (finished scans are kept), "
                "or choose another --out"
            )
        self.finished: dict[str, list[str]] = self._kept_rows() if existing else {}
        lines = [json.dumps({"provenance": self.provenance})]
        lines += [json.dumps({"key": key, "cells": cells}) for key, cells in self.finished.items()]
        _atomic_write(self.partial, "".join(f"{line}\n" for line in lines))
        self._handle = open(self.partial, "a", newline="")

    def append(self, key: str, row: Mapping) -> None:
        """Writes one finished row and flushes it to disk."""
        cells = [cell(row.get(column)) for column in self.columns]
        self._handle.write(json.dumps({"key": key, "cells": cells}) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.finished[key] = cells

    def close(self) -> None:
        """Closes the partial file; its rows stay for a resume."""
        self._handle.close()

    def rows_on_disk(self) -> int:
        """The finished rows the partial file holds (what a resume would find)."""
        return len(_read_partial(self.partial)[1])

    def finish(self, keys: Sequence[str]) -> dict[str, int]:
        """Writes OUT with one row per key, in this order, and its sidecar; removes the partial.

        Returns:
            {"rows": n, "ok": n, "failed": n}.
        """
        self.close()
        status = self.columns.index("status")
        rows = [self.finished[key] for key in keys]
        text = io.StringIO()
        csv.writer(text).writerows([self.columns, *rows])
        _atomic_write(self.out, text.getvalue())
        counts = {"rows": len(rows), OK: sum(r[status] == OK for r in rows)}
        counts[FAILED] = counts["rows"] - counts[OK]
        finished_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        sidecar = {**self.provenance, **counts, "finished": finished_at, "keys": list(keys)}
        _atomic_write(self.sidecar, json.dumps(sidecar, indent=1) + "\n")
        self.partial.unlink()
        return counts

    def _kept_rows(self) -> dict[str, list[str]]:
        """The ok rows of the partial, else of the complete output, after checking their identity."""
        if self.partial.exists():
            header, rows = _read_partial(self.partial)
            source = self.partial
        else:
            header, rows = self._read_complete()
            source = self.out
        changed = [key for key in IDENTITY_KEYS if header.get(key) != self.provenance.get(key)]
        if changed:
            was = header.get("export") if "export_fingerprint" in changed else header.get(changed[0])
            raise UsageError(
                f"{source} was written with another {changed[0].replace('_', ' ')} ({was}); "
                "resume it with the same export and settings, or choose another --out"
            )
        status = self.columns.index("status")
        return {key: cells for key, cells in rows.items() if cells[status] == OK}

    def _read_complete(self) -> tuple[dict, dict[str, list[str]]]:
        """The provenance and rows of a complete output, from its sidecar and CSV."""
        try:
            sidecar = json.loads(self.sidecar.read_text())
            keys = sidecar["keys"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            raise UsageError(
                f"{self.out} has no readable {self.sidecar.name} beside it, so it cannot be resumed; "
                "choose another --out"
            ) from None
        with open(self.out, newline="") as handle:
            header, *rows = list(csv.reader(handle))
        if header != sidecar.get("columns") or len(rows) != len(keys):
            raise UsageError(f"{self.out} does not match {self.sidecar.name}; choose another --out")
        return sidecar, dict(zip(keys, rows, strict=True))


def _read_partial(path: Path) -> tuple[dict, dict[str, list[str]]]:
    """The provenance and rows of a partial file; torn or unreadable lines are skipped (redone)."""
    header, rows = {}, {}
    with open(path, newline="") as handle:
        for number, line in enumerate(handle):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if number == 0:
                header = record.get("provenance", {}) if isinstance(record, dict) else {}
            elif isinstance(record, dict) and isinstance(record.get("cells"), list):
                rows[str(record.get("key"))] = [str(value) for value in record["cells"]]
    return header, rows
