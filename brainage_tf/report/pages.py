"""The report's HTML: one self-contained page per scan and the index of all scans.

Self-contained: styles inline, images as base64 PNG data URIs, no external script, so a
page opens from disk, mailed or archived, without network. Every value that comes from
the data (file names, subject and session IDs, reasons) goes through `html.escape`.
The index is written sorted by gap centile, highest first; its small inline script
sorts by any column on a click, and without scripts the written order stays.
"""

from __future__ import annotations

import base64
import dataclasses
import html

from brainage_tf.report.scan_rows import ReportScan

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.1em; word-break: break-all; }
h2 { font-size: 1.15em; border-bottom: 1px solid #ccc; margin-top: 1.4em; }
.path { color: #555; font-family: monospace; word-break: break-all; }
table { border-collapse: collapse; }
td, th { padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
table.facts th { white-space: nowrap; }
table.facts td.value { font-weight: bold; white-space: nowrap; }
td.note { color: #555; font-size: 0.9em; }
#scans th { cursor: pointer; background: #eee; position: sticky; top: 0; }
#scans td { border-top: 1px solid #ddd; }
#scans tr.flagged { background: #fff3e0; }
#scans tr.failed { background: #fdecea; }
.badge { display: inline-block; padding: 0 0.4em; border-radius: 0.3em; color: white; font-size: 0.85em; }
.badge.failed { background: #c62828; }
.badge.ood { background: #ef6c00; }
.banner { padding: 0.6em 1em; border-radius: 0.3em; margin: 0.8em 0; }
.banner.failed { background: #fdecea; border: 1px solid #c62828; }
.banner.ood { background: #fff3e0; border: 1px solid #ef6c00; }
.grid { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; }
figcaption { color: #555; font-size: 0.9em; max-width: 520px; }
footer { margin-top: 2em; color: #777; font-size: 0.85em; word-break: break-all; }
"""

_SORT_SCRIPT = """
document.querySelectorAll('#scans th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = document.querySelector('#scans tbody');
    var up = th.dataset.dir !== 'asc';
    th.dataset.dir = up ? 'asc' : 'desc';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      if (x === '' || y === '') { return (x === '') - (y === ''); }
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return up ? c : -c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
document.getElementById('scans').dataset.sortable = 'yes';
"""


@dataclasses.dataclass(frozen=True)
class RunFacts:
    """What every page says about the run: the export and its calibration.

    Attributes:
        model: The model's name from the export's metadata.
        export: The export's path.
        fingerprint: The export's fingerprint.
        interval_level: The conformal intervals' level (0.9), or None.
        ncc_min: The lowest registration NCC of the training scans, or None.
        has_norms: The export has normative centiles.
    """

    model: str
    export: str
    fingerprint: str
    interval_level: float | None
    ncc_min: float | None
    has_norms: bool


def text(value: object) -> str:
    """A value from the data as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    """PNG bytes as a data URI an <img> shows without any file beside the page."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def years(value: float | None, signed: bool = False) -> str:
    """Years as "7.43 y", "+0.52 y" (signed), or an en dash when unknown."""
    if value is None:
        return "–"
    return f"{value:+.2f} y" if signed else f"{value:.2f} y"


def _document(title: str, body: str, script: str = "") -> str:
    script_tag = f"<script>{script}</script>" if script else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{text(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n{script_tag}</body></html>\n"
    )


def _fact(name: str, ident: str, value: str, note: str) -> str:
    return f'<tr><th>{name}</th><td class="value" id="{ident}">{value}</td><td class="note">{note}</td></tr>'


def _banners(scan: ReportScan) -> str:
    parts = []
    if scan.failed:
        parts.append(f'<div class="banner failed"><b>Failed:</b> {text(scan.row.get("reason", ""))}</div>')
    if scan.ood:
        reason = text(scan.row.get("ood_reason", ""))
        parts.append(f'<div class="banner ood"><b>Out of distribution:</b> {reason}</div>')
    return "\n".join(parts)


def _age_table(scan: ReportScan, run: RunFacts) -> str:
    low, high = scan.value("interval_low"), scan.value("interval_high")
    if low is not None and high is not None:
        interval = f"{low:.2f} – {high:.2f} y"
    else:  # an infinite width (too few calibration subjects) is written as inf
        interval = "unbounded" if scan.row.get("interval_low") else "–"
    named = "Interval" if run.interval_level is None else f"{run.interval_level:.0%} interval"
    centile, z = scan.value("gap_centile"), scan.value("gap_z")
    rows = [
        _fact("Predicted age", "predicted-age", years(scan.value("predicted_age")),
              "the model's estimate from the scan alone"),
        _fact(named, "interval",
              interval, "conformal: holds the true age of this share of new children like the calibration "
              "subjects; unbounded when they were too few"),
        _fact("Chronological age", "age", years(scan.value("age")), "from the manifest or BIDS folder"),
        _fact("Brain-age gap", "gap", years(scan.value("brain_age_gap"), signed=True),
              "predicted − chronological age; positive: the brain looks older"),
        _fact("Bias-corrected gap", "corrected-gap",
              years(scan.value("corrected_brain_age_gap"), signed=True),
              "the gap minus what the model's regression to the mean predicts at this age "
              "(de Lange &amp; Cole 2020)"),
        _fact("Gap centile", "gap-centile", "–" if centile is None else f"{centile:.1f}",
              "the bias-corrected gap's centile among children of the same age in the export's "
              "calibration subjects (50: typical; below 3 or above 97: unusual)"),
        _fact("Gap z-score", "gap-z", "–" if z is None else f"{z:+.2f}",
              "the bias-corrected gap in standard deviations of gaps at this age"),
    ]  # fmt: skip
    return '<table class="facts">' + "".join(rows) + "</table>"


def _checks_table(scan: ReportScan, run: RunFacts) -> str:
    ncc, bad = scan.value("registration_ncc"), scan.value("non_finite_voxels")
    floor = f"training scans' lowest: {run.ncc_min:.3f}; " if run.ncc_min is not None else ""
    ood = scan.row.get("ood", "")
    ood_note = {
        "True": text(scan.row.get("ood_reason", "")),
        "False": "inside the training scans' ranges of registration NCC, intensity and predicted age",
    }.get(ood, "not checked: the export has no training ranges, or the scan failed")
    rows = [
        _fact("Status", "status", text(scan.row.get("status", "")), text(scan.row.get("reason", ""))),
        _fact("Registration NCC", "registration-ncc", "–" if ncc is None else f"{ncc:.3f}",
              f"{floor}correlation of the scan with the MNI152 template inside its brain mask "
              "(1 is perfect)"),
        _fact("Non-finite voxels", "non-finite", "–" if bad is None else f"{bad:.0f}",
              "NaN or infinite voxels outside the brain, read as 0"),
        _fact("Out of distribution", "ood", {"True": "yes", "False": "no"}.get(ood, "–"), ood_note),
    ]  # fmt: skip
    return '<table class="facts">' + "".join(rows) + "</table>"


_CHART_CAPTION = (
    "The bias-corrected predicted age against the chronological age, over the centile bands of the "
    "export's calibration subjects; grey: the run's other scans."
)
_PLAIN_CHART_CAPTION = "Predicted against chronological age; the export has no normative centiles."
_MONTAGE_CAPTION = (
    "Rows: axial, coronal, sagittal planes of the preprocessed scan (the subject's left on the left); "
    "yellow: the MNI152 template's brain outline on the model grid. A brain off the outline means a "
    "failed registration. Cyan, for a scan stripped with its own learned mask: that mask's outline."
)
_NO_MONTAGE = (
    "<p>No montage: the scan failed before the model saw it, or it finished in an earlier run "
    "without --report.</p>"
)


def _figure(png: bytes, alt: str, caption: str) -> str:
    return f'<figure><img src="{data_uri(png)}" alt="{alt}"><figcaption>{caption}</figcaption></figure>'


def scan_page(
    scan: ReportScan,
    run: RunFacts,
    chart: bytes | None,
    trajectory: bytes | None,
    montage: bytes | None,
) -> str:
    """One scan's page.

    Args:
        scan: Its row.
        run: The export's facts.
        chart: Its normative chart (None: age unknown or failed).
        trajectory: Its subject's gap trajectory (None: fewer than two scans of known age).
        montage: Its quality-control montage (None: failed before the model saw it, or
            finished in an earlier run without --report).
    """
    session = scan.row.get("session", "")
    ident = " · ".join(text(part) for part in (scan.row.get("subject_id"), session) if part)
    if chart is None:
        charts = "<p>No chart: the chronological age is unknown or the scan failed.</p>"
    else:
        charts = _figure(chart, "normative chart", _CHART_CAPTION if run.has_norms else _PLAIN_CHART_CAPTION)
    if trajectory is not None:
        charts += _figure(
            trajectory, "gap trajectory", "This subject's gap at each of its scans in this run."
        )
    qc = _NO_MONTAGE if montage is None else _figure(montage, "quality-control montage", _MONTAGE_CAPTION)
    body = f"""<p><a href="index.html">&larr; all scans</a></p>
<h1 id="label">{text(scan.label)}</h1>
<p>{ident}</p>
<p class="path" id="path">{text(scan.row.get("path", ""))}</p>
{_banners(scan)}
<h2>Brain age</h2>
{_age_table(scan, run)}
<h2>Checks</h2>
{_checks_table(scan, run)}
<h2>Charts</h2>
<div class="grid">{charts}</div>
<h2>Quality control</h2>
{qc}
{_footer(run)}"""
    return _document(f"Brain age: {scan.label}", body)


def _footer(run: RunFacts) -> str:
    export = f"{text(run.model)} export {text(run.export)} ({text(run.fingerprint)})"
    return f"<footer>Written by brainage_tf.predict with the {export}.</footer>"


def _cell(shown: str, sort_value: object) -> str:
    return f'<td data-v="{text(sort_value)}">{shown}</td>'


# The index's number columns, in order, and those shown with a sign.
_INDEX_NUMBERS = ("age", "predicted_age", "brain_age_gap", "corrected_brain_age_gap", "gap_centile", "gap_z")
_SIGNED = ("brain_age_gap", "corrected_brain_age_gap", "gap_z")


def _index_row(scan: ReportScan) -> str:
    badges = []
    if scan.failed:
        badges.append(f'<span class="badge failed" title="{text(scan.row.get("reason", ""))}">failed</span>')
    if scan.ood:
        badges.append(f'<span class="badge ood" title="{text(scan.row.get("ood_reason", ""))}">OOD</span>')
    values = {c: scan.value(c) for c in _INDEX_NUMBERS}
    shown = {c: "" if v is None else (f"{v:+.2f}" if c in _SIGNED else
             f"{v:.1f}" if c == "gap_centile" else f"{v:.2f}") for c, v in values.items()}  # fmt: skip
    flags = " ".join(badges)
    cells = [
        _cell(str(scan.index + 1), scan.index + 1),
        _cell(f'<a href="{text(scan.page)}">{text(scan.label)}</a>', scan.label),
        _cell(text(scan.row.get("subject_id", "")), scan.row.get("subject_id", "")),
        _cell(text(scan.row.get("session", "")), scan.row.get("session", "")),
        *(_cell(shown[c], "" if values[c] is None else values[c]) for c in values),
        _cell(flags, ("failed " if scan.failed else "") + ("OOD" if scan.ood else "")),
    ]
    kind = "failed" if scan.failed else "flagged" if scan.ood else ""
    return f'<tr class="{kind}">{"".join(cells)}</tr>'


def index_page(scans: list[ReportScan], run: RunFacts) -> str:
    """The index: every scan, sorted by gap centile (highest first, unknown last), flags marked."""
    ordered = sorted(scans, key=lambda s: (s.value("gap_centile") is None, -(s.value("gap_centile") or 0.0),
                                           s.index))  # fmt: skip
    heads = ["#", "scan", "subject", "session", "age (y)", "predicted (y)", "gap (y)", "corrected gap (y)",
             "gap centile", "gap z", "flags"]  # fmt: skip
    failed, ood = sum(s.failed for s in scans), sum(s.ood for s in scans)
    body = f"""<h1>Brain age report</h1>
<p id="counts">{len(scans)} scans: {len(scans) - failed} predicted, {failed} failed, {ood} out of \
distribution.</p>
<p>Sorted by gap centile, highest first; click a column to sort by it. Each scan links to its page.</p>
<table id="scans"><thead><tr>{"".join(f"<th>{h}</th>" for h in heads)}</tr></thead>
<tbody>
{chr(10).join(_index_row(scan) for scan in ordered)}
</tbody></table>
{_footer(run)}"""
    return _document("Brain age report", body, _SORT_SCRIPT)
