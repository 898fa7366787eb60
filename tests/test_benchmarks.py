"""The benchmark's own promises: FLOPs counted right, and PyTorch twins of the same size as our models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from flops import analytic_gflops, profiler_gflops  # noqa: E402

from brainage_tf.defaults import LSTM_UNITS  # noqa: E402
from brainage_tf.models import build_model  # noqa: E402

SHAPE = (36, 20, 14)


@pytest.mark.parametrize("model_name", ["slice_lstm", "resnet3d"])
def test_analytic_flops_agree_with_the_tf_profiler(model_name):
    model = build_model(model_name, SHAPE, width_multiplier=0.25, slice_size=(40, 40), pool_size=2)
    analytic, profiled = analytic_gflops(model), profiler_gflops(model)
    # The profiler also counts element-wise ops (norms, ReLUs, adds), a few percent at most.
    assert analytic > 0 and 0.9 * profiled <= analytic <= profiled


@pytest.mark.parametrize("model_name", ["slice_lstm", "resnet3d"])
def test_pytorch_twins_have_our_parameters(model_name):
    pytest.importorskip("torch", reason="the bench extra (torch==2.13.0) is not installed")
    import torch_models

    ours = build_model(model_name, SHAPE).count_params()
    theirs = sum(parameter.numel() for parameter in torch_models.build(model_name, SHAPE).parameters())
    # PyTorch's LSTM has two bias vectors per direction where Keras has one.
    extra_biases = 2 * 4 * LSTM_UNITS if model_name == "slice_lstm" else 0
    assert theirs == ours + extra_biases
