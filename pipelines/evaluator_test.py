"""The blessing rule: at most max_mae, and no worse than the pushed model on the same scans."""

import math

import pytest

from pipelines.evaluator import blessing_reasons


@pytest.mark.parametrize(
    "mae, baseline, reasons",
    [
        (2.0, (None, None, None), []),
        (3.0, (None, None, None), []),  # the maximum itself passes
        (3.5, (None, None, None), ["MAE 3.500 y is above the maximum 3 y"]),
        (math.nan, (None, None, None), ["MAE nan y is above the maximum 3 y"]),
        (2.0, (4, 2.0, None), []),  # as good as the pushed model: no worse
        (2.0, (4, 2.5, None), []),
        (2.0, (4, 1.9, None), ["MAE 2.000 y is worse than pushed version 4 (1.900 y)"]),
        (2.0, (4, None, "it takes volumes of shape (24, 30, 21)"), [
            "cannot compare with pushed version 4: it takes volumes of shape (24, 30, 21)"]),
        (3.5, (4, 1.9, None), [
            "MAE 3.500 y is above the maximum 3 y", "MAE 3.500 y is worse than pushed version 4 (1.900 y)"]),
    ],
)  # fmt: skip
def test_blessing_reasons(mae, baseline, reasons):
    assert blessing_reasons(mae, 3.0, *baseline) == reasons
