"""GGUF (llama.cpp's gpt2): the classic golden model written, read back by the gguf package and run by a numpy
GPT-2 gives its logits within 1e-4 and its greedy tokens; the modern style is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from nanochat_next.errors import UserError
from nanochat_next.export.formats import export
from nanochat_next.model.saving import load_trained

pytest.importorskip("gguf", reason="the GGUF tests need the export extra: pip install 'nanochat-next[export]'")


def test_classic_model_round_trips_through_gguf(classic_gold, tmp_path):
    from nanochat_next.export.gguf_export import gpt2_forward, read_gguf

    gold = classic_gold
    report = export(gold.path, "gguf", tmp_path)
    assert report["verified"]["greedy_equal"] and report["verified"]["max_logit_diff"] < 1e-4
    hparams, weights = read_gguf(tmp_path / "model.gguf")
    assert hparams["general.architecture"] == "gpt2" and hparams["gpt2.context_length"] == 64
    assert weights["token_embd.weight"].shape == (512, 64)  # the real vocabulary, no padding rows
    np.testing.assert_allclose(gpt2_forward(hparams, weights, gold.prompt_ids), gold.logits.numpy(), rtol=0,
                               atol=1e-4)


def test_the_token_list_is_our_vocabulary(golden_root, tmp_path):
    import gguf

    _, tokenizer, _ = load_trained(golden_root / "classic", "cpu")
    export(golden_root / "classic", "gguf", tmp_path, verify=False)
    fields = gguf.GGUFReader(str(tmp_path / "model.gguf")).fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    assert len(tokens) == tokenizer.vocab_size and tokens[tokenizer.bos_id] == "<|bos|>"
    assert fields["tokenizer.ggml.model"].contents() == "gpt2"


def test_the_modern_style_is_refused(golden_root, tmp_path):
    with pytest.raises(UserError, match="no GGUF architecture has the modern style's math"):
        export(golden_root / "modern-next", "gguf", tmp_path)
