"""The scans a batch command works on: where they are listed, and how each is named and keyed."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brainage_tf.defaults import SCAN_SUFFIXES
from brainage_tf.errors import CohortLayoutError, UsageError, one_line

_SCAN_SUFFIX = re.compile(f"({'|'.join(map(re.escape, SCAN_SUFFIXES))})$", re.IGNORECASE)


@dataclass(frozen=True)
class ScanItem:
    """One scan to work on: its path and, when known, subject, session and age."""

    path: str
    subject_id: str = ""
    session: str = ""
    age: float | None = None


def scan_items(paths: Sequence[str], bids: str | None, manifest: str | None) -> list[ScanItem]:
    """The scans of the positional paths (no age), the BIDS folder and the manifest, in that order.

    Raises:
        UsageError: An unreadable BIDS folder or manifest (one line naming the problem).
    """
    from brainage_tf.ingest import read_bids, read_manifest

    items = [ScanItem(path=str(Path(path).resolve())) for path in paths]
    for reader, source in ((read_bids, bids), (read_manifest, manifest)):
        if source is None:
            continue
        try:
            records = reader(source)
        except (CohortLayoutError, OSError, ValueError) as error:
            raise UsageError(one_line(error)) from None
        items += [ScanItem(r.path, r.subject_id, r.session, r.age_years) for r in records]
    return items


def item_keys(items: Sequence[ScanItem]) -> list[str]:
    """A key per item that a later run over the same scans gives again.

    It holds the path, subject, session and age, the file's size and modification
    time (a scan replaced under the same path is worked on again), and the number of
    earlier identical items (a scan listed twice gets two rows, as it would without resume).
    """
    keys, seen = [], {}
    for item in items:
        try:
            stat = os.stat(item.path) if item.path else None
        except OSError:
            stat = None
        identity = [item.path, item.subject_id, item.session, None if item.age is None else repr(item.age)]
        identity.append(None if stat is None else [stat.st_size, stat.st_mtime_ns])
        text = json.dumps(identity)
        seen[text] = seen.get(text, 0) + 1
        keys.append(json.dumps([*identity, seen[text]]))
    return keys


def folder_names(items: Sequence[ScanItem]) -> list[str]:
    """One distinct folder name per scan: subject[_session] when known, else the file name without suffix."""
    names, used = [], set()
    for item in items:
        base = "_".join(p for p in (item.subject_id, item.session) if p)
        base = base or _SCAN_SUFFIX.sub("", Path(item.path).name) or "scan"
        name, copy = base, 1
        while name in used:
            copy += 1
            name = f"{base}-{copy}"
        used.add(name)
        names.append(name)
    return names
