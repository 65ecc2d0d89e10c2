"""ONNX graphs in onnxruntime: logits of the golden models within 1e-4, greedy tokens equal to our engine's,
batches, chunked decoding through the cache past the sliding window, and the config a client reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the ONNX tests need the export extra: pip install 'nanochat-next[export]'")
pytestmark = pytest.mark.slow  # exporting the three golden models takes ~20 s


def test_prefill_logits_and_greedy_generation_equal_ours(gold, onnx_exports):
    from nanochat_next.export.onnx_graphs import OnnxModel

    model = OnnxModel(onnx_exports[gold.name])
    np.testing.assert_allclose(model.logits(gold.prompt_ids), gold.logits.numpy(), rtol=0, atol=1e-4)
    assert model.greedy(gold.prompt_ids, 24) == gold.greedy


def test_batches_and_one_token_steps_equal_the_full_prefill(gold, onnx_exports):
    """Rows of a batch are independent; prefill of 5 then 30 single decode steps (past the S window of 32,
    so the in-graph sliding-window mask is used) equals one prefill of all 35 tokens."""
    from nanochat_next.export.onnx_graphs import OnnxModel

    model = OnnxModel(onnx_exports[gold.name])
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 512, size=(3, 35))
    full = model.run("prefill", {"input_ids": ids})[0]
    for row in range(3):
        # another batch size may take other kernels (summation order): onnxruntime's float32 tolerance
        np.testing.assert_allclose(full[row], model.logits(ids[row].tolist()), rtol=0, atol=1e-4)
    logits, k, v, e = model.run("prefill", {"input_ids": ids[:, :5]})
    steps = [logits]
    for t in range(5, 35):
        logits, k, v, e = model.run("decode", {"input_ids": ids[:, t:t + 1], "past_k": k, "past_v": v,
                                               "prev_embedding": e})
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=0, atol=1e-4)
    assert k.shape[3] == 35


def test_the_export_says_what_a_client_needs(onnx_exports):
    for name, directory in onnx_exports.items():
        config = json.loads((directory / "onnx_config.json").read_text())
        assert config["format"] == "nanochat-next/onnx" and config["version"] == 1
        assert config["style"] == ("classic" if name == "classic" else "modern")
        assert (config["vocab_size"], config["context"], config["bos_id"]) == (512, 64, 503)
        assert {p.name for p in directory.iterdir()} >= {"prefill.onnx", "decode.onnx", "tokenizer.json",
                                                          "tokenizer_config.json"}
