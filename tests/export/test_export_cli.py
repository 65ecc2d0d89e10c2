"""`nanochat-next export --to FORMAT`: every format written and verified from the command line; a damaged
export is caught by the verification; what cannot be exported is refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from nanochat_next.cli.main import main
from nanochat_next.export.formats import export

pytest.importorskip("onnxruntime", reason="export needs the export extra: pip install 'nanochat-next[export]'")
pytest.importorskip("transformers", reason="export needs the export extra: pip install 'nanochat-next[export]'")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["safetensors", "hf", "onnx", "tokenizer", "nanochat"])
def test_every_format_from_the_command_line(golden_root, tmp_path, capsys, fmt):
    code = main(["export", "--checkpoint", str(golden_root / "modern-nanochat"), "--to", fmt, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and f"to {tmp_path}/" in out
    if fmt in ("safetensors", "hf", "onnx"):
        assert "verified: max logit difference" in out and "greedy tokens equal" in out
    elif fmt == "tokenizer":
        assert "texts encode exactly" in out
    assert any(tmp_path.iterdir())


def test_safetensors_export_is_a_documented_versioned_interface(golden_root, tmp_path):
    report = export(golden_root / "modern-next", "safetensors", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["format"] == "nanochat-next/model" and config["format_version"] == 1
    assert config["model_config"]["smear"] is True and config["style"] == "modern"
    assert config["tokenizer"]["special_tokens"]["<|bos|>"] == 503
    assert set(report["files"]) == {"model.safetensors", "config.json", "tokenizer.tiktoken", "tokenizer.json",
                                    "tokenizer_config.json", "special_tokens_map.json"}
    assert report["verified"]["greedy_equal"] and report["verified"]["max_logit_diff"] < 1e-5


def test_a_damaged_export_fails_verification(golden_root, tmp_path, monkeypatch):
    """The check can fail: an export whose weights differ from the model's is caught, in one line."""
    from safetensors.torch import load_file, save_file

    from nanochat_next.errors import UserError
    from nanochat_next.export import formats

    real = formats.export_safetensors

    def damaged(model, tokenizer, source, out):
        files = real(model, tokenizer, source, out)
        state = load_file(out / "model.safetensors")
        state["x0_lambdas"] = state["x0_lambdas"] + torch.tensor(0.05)
        save_file(state, out / "model.safetensors")
        return files

    monkeypatch.setattr(formats, "export_safetensors", damaged)
    with pytest.raises(UserError, match="does not reproduce the model: max logit difference"):
        export(golden_root / "modern-nanochat", "safetensors", tmp_path)


def test_refusals_are_one_line(golden_root, tmp_path, capsys):
    from nanochat_next.model.bigram import TensorBigram
    from nanochat_next.model.gpt import GPTConfig
    from nanochat_next.model.saving import save_model

    bigram = tmp_path / "bigram"
    save_model(bigram / "model", TensorBigram(GPTConfig(vocab_size=512, sequence_len=64)), {})
    shutil.copytree(golden_root / "classic" / "tokenizer", bigram / "tokenizer")
    cases = [(["--checkpoint", str(bigram), "--to", "onnx"], "exports GPT models (modern or classic style)"),
             (["--checkpoint", str(tmp_path / "none"), "--to", "onnx"], "no tensor model at"),
             (["--checkpoint", str(golden_root / "modern-next"), "--to", "nanochat"], "train with --recipe nanochat"),
             (["--checkpoint", str(golden_root / "classic"), "--to", "nanochat"], "only the modern style")]
    for args, message in cases:
        assert main(["export", *args, "--out", str(tmp_path / "out" / "deeper")]) != 0
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "out").exists(), f"a refused export left {tmp_path / 'out'} behind ({args})"


def test_the_default_format_exports_the_default_recipes_model(golden_root, tmp_path, capsys):
    """The first export a user tries (no --to) works on what the default `next` recipe trains."""
    assert main(["export", "--checkpoint", str(golden_root / "modern-next"), "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "model.safetensors").is_file() and "verified" in capsys.readouterr().out


def test_export_help_lists_every_format(capsys):
    from nanochat_next.export import FORMATS

    assert main(["export", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(f"{name} (" in text for name in FORMATS), text


def test_export_of_an_unknown_format_is_refused(golden_root, tmp_path):
    from nanochat_next.errors import UserError

    with pytest.raises(UserError, match="unknown export format"):
        export(Path(golden_root / "classic"), "pickle", tmp_path)


def test_a_model_of_a_newer_format_version_is_refused(golden_root, tmp_path):
    from nanochat_next.errors import UserError
    from nanochat_next.model.saving import load_trained

    shutil.copytree(golden_root / "classic", tmp_path / "m")
    path = tmp_path / "m" / "model" / "config.json"
    config = json.loads(path.read_text())
    config.pop("format_version", None)  # as written before versions: read as version 1
    path.write_text(json.dumps(config))
    load_trained(tmp_path / "m", "cpu")
    config["format_version"] = 2
    path.write_text(json.dumps(config))
    with pytest.raises(UserError, match="format version 2 of nanochat-next/model; this nanochat-next reads up to 1"):
        load_trained(tmp_path / "m", "cpu")
