"""`predict --report DIR`: pages that show the run's numbers, escaped, and render in a browser."""

from __future__ import annotations

import base64
import csv
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_checks import export_copy_with_metadata

from brainage_tf import predict
from brainage_tf.preprocessing import GRIDS, template_on_grid
from brainage_tf.report.qc_montage import MASK_OUTLINE_RGB, OUTLINE_RGB, montage_rgb

# Set by the test: de Lange & Cole line and centiles whose SD grows with age, as a run's would.
BIAS = {"slope": 0.8, "intercept": 1.0, "n_fit": 20, "method": "de Lange & Cole 2020"}
NORMS = {"mean_intercept": 0.0, "mean_slope": 0.0, "sd_intercept": 0.5, "sd_slope": 0.1, "sd_floor": 0.05,
         "age_range": [2.0, 20.0], "n_fit": 10, "method": "Altman 1993, absolute residuals"}  # fmt: skip
# The fixture's z-scored scans have whole-volume SDs of 0.7-1.5 (the OOD check adds 10 % of the range);
# the one with a bright corner about 3.
STD_LIMIT = 2.0
EVIL_NAME = "<script>alert(1)&x.nii.gz"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI (.ci/run) installs Chromium and sets this, so there a missing browser fails instead of skipping.
REQUIRE_CHROMIUM = os.environ.get("BRAINAGE_REQUIRE_CHROMIUM") == "1"
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not REQUIRE_CHROMIUM,
    reason="headless Chromium is not installed (apt-get install chromium; .ci/run does)",
)


def _bright_corner_copy(source: str, target: Path) -> Path:
    """The scan with a bright block in its field of view outside the brain: intensities out of range."""
    import nibabel as nib

    image = nib.load(source)
    data = image.get_fdata(dtype=np.float32)
    data[:4, :4, :4] = 40.0 * float(data.max())
    nib.save(nib.Nifti1Image(data, image.affine), target)
    return target


@pytest.fixture(scope="module")
def report(served_model, tmp_path_factory) -> dict:
    """One predict run with --report: a subject seen twice, a failed scan, an OOD scan, an evil file name."""
    root = tmp_path_factory.mktemp("report")
    reference = {"age": [0.0, 30.0], "registration_ncc_min": 0.0,
                 "intensity_mean": [-100.0, 100.0], "intensity_std": [0.0, STD_LIMIT]}  # fmt: skip
    export = export_copy_with_metadata(served_model["model"], root / "export", bias_correction=BIAS,
                                       normative=NORMS, reference=reference)  # fmt: skip
    paths = sorted(served_model["stored"]["train"])[:4]
    ages = served_model["ages"]
    evil = root / EVIL_NAME
    shutil.copy(paths[0], evil)
    bright = _bright_corner_copy(paths[3], root / "bright.nii.gz")
    manifest = root / "scans.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", "session", "age", "path"])
        # One child seen twice (two of the cohort's scans, a year apart in the manifest).
        writer.writerow(["kid&1", "ses-1", ages[paths[1]], paths[1]])
        writer.writerow(["kid&1", "ses-2", ages[paths[1]] + 1.0, paths[2]])
        writer.writerow(["lone", "ses-1", ages[paths[3]], bright])
        writer.writerow(["gone", "ses-1", 8.0, root / "missing.nii.gz"])
    out, folder = root / "ages.csv", root / "report"
    argv = ["--model", str(export), str(evil), "--manifest", str(manifest), "--out", str(out)]
    assert predict.main([*argv, "--workers", "0", "--report", str(folder)]) == 1  # the missing scan failed
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    pages = {row["path"]: page for row, page in zip(rows, sorted(folder.glob("0*.html")), strict=True)}
    return dict(rows=rows, folder=folder, pages=pages, index=folder / "index.html",
                argv=[*argv, "--workers", "0", "--report", str(folder)])  # fmt: skip


def _images(html: str) -> list[bytes]:
    sources = re.findall(r'<img src="([^"]*)"', html)
    assert all(s.startswith("data:image/png;base64,") for s in sources), sources
    return [base64.b64decode(s.partition(",")[2]) for s in sources]


def _png_pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_pages_show_the_rows_numbers_flags_and_escaped_names(report):
    rows, pages = report["rows"], report["pages"]
    assert [row["status"] for row in rows] == ["ok", "ok", "ok", "ok", "failed"]
    assert [row["ood"] for row in rows] == ["False", "False", "False", "True", ""]
    for row in rows:
        page = pages[row["path"]].read_text()
        assert (
            "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
        )
        images = _images(page)
        if row["status"] == "ok":
            assert f'id="predicted-age">{float(row["predicted_age"]):.2f} y<' in page
            # The served export was calibrated on one subject: its intervals are infinite.
            assert row["interval_high"] == "inf" and 'id="interval">unbounded<' in page
            montage = _png_pixels(images[-1])
            assert (montage == OUTLINE_RGB).all(axis=2).sum() > 100  # the template outline is drawn
        if row["gap_centile"]:
            assert f'id="gap-centile">{float(row["gap_centile"]):.1f}<' in page
    evil_page = pages[rows[0]["path"]].read_text()
    assert "<script>alert" not in evil_page and "&lt;script&gt;alert(1)&amp;x.nii.gz" in evil_page
    assert 'id="age">–<' in evil_page and "No chart: the chronological age is unknown" in evil_page
    twice = [pages[row["path"]].read_text() for row in rows[1:3]]
    assert all('alt="gap trajectory"' in page and "kid&amp;1" in page for page in twice)
    assert 'alt="gap trajectory"' not in pages[rows[3]["path"]].read_text()  # one scan: no trajectory
    failed = pages[rows[4]["path"]].read_text()
    assert "<b>Failed:</b>" in failed and "file not found" in failed and "<img" not in failed
    assert "<b>Out of distribution:</b>" in pages[rows[3]["path"]].read_text()


def test_the_index_lists_every_scan_by_gap_centile_with_flags_marked(report):
    index = report["index"].read_text()
    rows = report["rows"]
    links = re.findall(r'<a href="([^"]+)">', index)
    assert len(links) == len(rows) and {report["folder"] / link for link in links} == set(
        report["pages"].values()
    )
    # Highest centile first, scans without one (age unknown, failed) after them in run order.
    centiles = sorted((float(r["gap_centile"]) for r in rows if r["gap_centile"]), reverse=True)
    table = [re.findall(r'data-v="([^"]*)"', tr) for tr in re.findall(r"<tr class=.*?</tr>", index)]
    shown = [float(cells[8]) for cells in table if cells[8]]  # the gap centile column
    assert shown == centiles and len(centiles) == 3
    marked = re.findall(r'<tr class="([a-z]*)">', index)
    assert sorted(marked) == ["", "", "", "failed", "flagged"]
    assert index.count('class="badge failed"') == 1 and index.count('class="badge ood"') == 1
    assert "&lt;script&gt;" in index and "<script>alert" not in index
    assert 'id="counts">5 scans: 4 predicted, 1 failed, 1 out of' in index


def test_a_resumed_run_keeps_the_montages_of_the_scans_it_does_not_redo(report, monkeypatch):
    from brainage_tf.serving import predictions

    before = {page: page.read_bytes() for page in report["pages"].values()}
    redone = []
    original = predictions.Predictor.__call__

    def recording(self, index, item, scan):
        redone.append(index)
        return original(self, index, item, scan)

    monkeypatch.setattr(predictions.Predictor, "__call__", recording)
    assert predict.main([*report["argv"], "--resume"]) == 1  # the missing scan is tried again, and fails
    assert redone == []  # every ok scan kept: none preprocessed or drawn again
    # The same pages, montages included, from the montages kept by the first run.
    assert {page: page.read_bytes() for page in report["pages"].values()} == before


def test_a_misregistered_brain_spills_over_the_template_outline():
    """On the template, no brain pixel of the montage lies outside the outline; shifted 24 mm, many do."""
    import scipy.ndimage

    mask = template_on_grid(GRIDS["tiny"])[1]
    # A brain exactly where the template's is, its intensity rising from bottom to top.
    brain = np.where(mask, np.linspace(1.0, 2.0, mask.shape[2]), 0.0).astype(np.float32)
    gaps = (montage_rgb(np.zeros(mask.shape), mask) == 255).all(axis=2)  # the white between panels

    def brain_outside_outline(volume: np.ndarray) -> float:
        image = montage_rgb(volume, mask)
        outline = (image == OUTLINE_RGB).all(axis=2)
        shown = (image.min(axis=2) > 64) & ~outline & ~gaps
        return float((shown & ~scipy.ndimage.binary_fill_holes(outline)).sum() / shown.sum())

    assert brain_outside_outline(brain) < 0.01
    assert brain_outside_outline(np.roll(brain, 3, axis=0)) > 0.1  # 3 voxels of 8 mm to the right


def test_a_learned_brain_mask_is_outlined_beside_the_templates():
    import scipy.ndimage

    mask = template_on_grid(GRIDS["tiny"])[1]
    brain = np.where(mask, 1.0, 0.0).astype(np.float32)
    own = scipy.ndimage.binary_erosion(mask, iterations=2)  # a mask that cut into the brain

    def pixels(image: np.ndarray, colour) -> int:
        return int((image == colour).all(axis=2).sum())

    plain, stripped = montage_rgb(brain, mask), montage_rgb(brain, mask, own)
    assert pixels(plain, MASK_OUTLINE_RGB) == 0
    assert pixels(stripped, MASK_OUTLINE_RGB) > 100
    assert pixels(stripped, OUTLINE_RGB) > 100  # the template's outline stays, outside the cut


def test_a_report_folder_that_cannot_be_made_is_a_one_line_usage_error(served_model, tmp_path, capsys):
    taken = tmp_path / "report.html"
    taken.write_text("")
    cases = {taken: "is a file, not a folder", tmp_path / "no" / "report": "does not exist"}
    scan = sorted(served_model["stored"]["train"])[0]
    for folder, message in cases.items():
        argv = ["--model", str(served_model["model"]), scan, "--out", str(tmp_path / "ages.csv")]
        assert predict.main([*argv, "--report", str(folder)]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and f"--report {folder}: " in error and message in error, error
    assert not (tmp_path / "ages.csv.partial").exists()  # refused before any scan


def _chromium(*arguments: str) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None, "BRAINAGE_REQUIRE_CHROMIUM=1 but no chromium on PATH"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)


@needs_chromium
@pytest.mark.parametrize("which", ["index", "subject"])
def test_chromium_renders_the_pages(report, which, tmp_path):
    rows = report["rows"]
    path = report["index"] if which == "index" else report["pages"][rows[1]["path"]]
    shot = tmp_path / f"{which}.png"
    # One launch both screenshots the page and prints its DOM after the inline script ran.
    dom = _chromium(f"--screenshot={shot}", "--dump-dom", "--window-size=1200,1600", path.as_uri()).stdout
    pixels = _png_pixels(shot.read_bytes())
    assert pixels.shape[:2] == (1600, 1200)
    # Rendered, not blank: many colours (text, badges, charts), and not all of the page is white.
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50 and (pixels.min(axis=2) < 200).mean() > 0.005
    if which == "index":
        assert "<title>Brain age report</title>" in dom and dom.count("<tr class=") == len(rows)
        assert '<table id="scans" data-sortable="yes">' in dom  # the sorting script ran to its end
        for row in rows[:4]:
            assert f">{float(row['predicted_age']):.2f}<" in dom
    else:
        assert "<title>Brain age: kid&amp;1_ses-1</title>" in dom
        assert f'id="predicted-age">{float(rows[1]["predicted_age"]):.2f} y<' in dom
        assert f'id="gap-centile">{float(rows[1]["gap_centile"]):.1f}<' in dom
        assert dom.count("data:image/png;base64,") == 3  # normative chart, trajectory, montage
