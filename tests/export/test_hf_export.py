"""The hf export loads in transformers (AutoModelForCausalLM, AutoTokenizer): logits of the golden models within
1e-5 and generate()'s greedy tokens equal our engine's; the classic style is the stock GPT2LMHeadModel."""

from __future__ import annotations

import pytest
import torch

from nanochat_next.export.hf_export import export_hf
from nanochat_next.model.saving import load_trained

transformers = pytest.importorskip("transformers", reason="the hf tests need the export extra")


def test_transformers_loads_the_export_and_reproduces_the_model(gold, tmp_path):
    model, tokenizer, _ = load_trained(gold.path, "cpu")
    export_hf(model, tokenizer, tmp_path)
    transformers.logging.disable_progress_bar()
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, trust_remote_code=True).eval()
    expected_class = "GPT2LMHeadModel" if gold.name == "classic" else "NanochatNextForCausalLM"
    assert type(hf).__name__ == expected_class
    ids = torch.tensor([gold.prompt_ids])
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits[0], gold.logits, rtol=0, atol=1e-5)
        out = hf.generate(ids, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.bos_id)[0].tolist()
    new = out[len(gold.prompt_ids):]
    stops = {tokenizer.bos_id, tokenizer.special_id("<|assistant_end|>")}
    assert new[: next((i for i, t in enumerate(new) if t in stops), len(new))] == gold.greedy
    fast = transformers.AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=True)
    assert [tokenizer.bos_id, *fast(gold.prompt, add_special_tokens=False)["input_ids"]] == gold.prompt_ids


def test_the_custom_code_needs_no_nanochat_next(gold, tmp_path):
    """The modeling files import torch and transformers, and each other, only."""
    if gold.name == "classic":
        pytest.skip("the classic export is stock GPT-2: no code")
    model, tokenizer, _ = load_trained(gold.path, "cpu")
    export_hf(model, tokenizer, tmp_path)
    for name in ("modeling_nanochat_next.py", "portable.py"):
        code = (tmp_path / name).read_text()
        assert "nanochat_next." not in code.replace("modeling_nanochat_next.", "") and "import torch" in code


def test_left_padding_is_refused_clearly(golden_root, tmp_path):
    model, tokenizer, _ = load_trained(golden_root / "modern-next", "cpu")
    export_hf(model, tokenizer, tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, trust_remote_code=True)
    with pytest.raises(ValueError, match="unpadded"):
        hf(torch.tensor([[1, 2, 3]]), attention_mask=torch.tensor([[0, 1, 1]]))
