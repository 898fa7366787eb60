"""The per-subject report of a predict run: `python -m brainage_tf.predict ... --report DIR`.

* `qc_montage`: the preprocessed scan with the template's brain outline, drawn as predict
  finishes each scan (`MontageKeeper`), so preprocessing never runs twice.
* `scan_rows`: the finished CSV's rows as the pages read them.
* `charts`: the normative chart and the gap trajectory, over the export's centile bands.
* `pages`: the HTML of a scan's page and of the index, self-contained and escaped.
* `writer`: `write_report`, every page and the index from the CSV and the kept montages.

See docs/serving.md, "The per-subject report".
"""
