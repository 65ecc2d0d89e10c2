"""The recipe's model features and training rules (smear, backout, q/k scale, RoPE base, value-embedding gate,
later init, tied embeddings, input norm, MuonEq, schedules): each does what it says, switched off it is
exactly nanochat 2f09686, and the KV cache follows every one of them."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
import torch

from nanochat_next.cli.main import build_parser
from nanochat_next.cli.train_cmds import resolve_run
from nanochat_next.errors import UserError
from nanochat_next.infer.kv_cache import KVCache
from nanochat_next.model.gpt import GPT, GPTConfig
from nanochat_next.model.gpt import RECIPE_FIELDS as MODEL_FIELDS
from nanochat_next.model.nanochat_layout import export_nanochat
from nanochat_next.model.saving import load_trained, save_model
from nanochat_next.train.config import (
    NANOCHAT_NEWEST,
    RECIPE_FIELDS,
    RECIPES,
    TensorRun,
    build_model,
    model_config,
    recipe_values,
    with_recipe_fields,
)
from nanochat_next.train.muon import (
    equalize_rows,
    muon_update,
    orthogonalize,
    semi_orthogonal_norm,
)
from nanochat_next.train.recipe import muon_momentum, muon_weight_decay, nanochat_param_groups

BASE = dict(sequence_len=32, vocab_size=80, n_layer=4, n_head=2, n_kv_head=2, n_embd=64, window_pattern="L")


def jittered(config: GPTConfig, seed: int = 0) -> GPT:
    """A model whose every weight matters (nanochat's init zeroes the projections)."""
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def copy_shared(src: GPT, dst: GPT) -> GPT:
    missing, _ = dst.load_state_dict(src.state_dict(), strict=False)
    assert not [k for k in missing if not k.startswith(("smear", "backout"))]
    return dst


@torch.inference_mode()
def test_smear_with_zero_strength_is_the_plain_model_and_otherwise_leaves_position_0_alone():
    plain = jittered(GPTConfig(**BASE))
    smeared = copy_shared(plain, GPT(GPTConfig(**BASE, smear=True)).eval())
    ids = torch.randint(0, 80, (2, 20), generator=torch.Generator().manual_seed(1))
    assert torch.equal(smeared(ids), plain(ids))  # init: lambda 0, smear switched off
    smeared.smear_lambda.fill_(0.7)
    a, b = smeared(ids), plain(ids)
    assert torch.equal(a[:, 0], b[:, 0])  # the first position has no previous token
    assert (a[:, 1:] - b[:, 1:]).abs().max() > 1e-3


@torch.inference_mode()
def test_backout_subtracts_the_mid_depth_stream():
    plain = jittered(GPTConfig(**BASE))
    backed = copy_shared(plain, GPT(GPTConfig(**BASE, backout=True)).eval())
    ids = torch.randint(0, 80, (1, 16), generator=torch.Generator().manual_seed(2))
    assert backed.backout_lambda.item() == pytest.approx(0.2)  # nanochat's later init
    backed.backout_lambda.zero_()
    assert torch.equal(backed(ids), plain(ids))
    backed.backout_lambda.fill_(0.5)
    assert (backed(ids) - plain(ids)).abs().max() > 1e-3


@pytest.mark.parametrize("features", [
    dict(smear=True), dict(backout=True), dict(qk_scale=1.2, rope_base=100000.0),
    dict(ve_gate_range=3.0, ve_gate_channels=12, init="next"), dict(tie_embeddings=True, embed_norm=False),
])
@torch.inference_mode()
def test_the_kv_cache_in_chunks_equals_the_full_forward(features):
    """Prefill, a second chunk, then single tokens: smear's previous embedding crosses every boundary."""
    model = jittered(GPTConfig(**BASE, **features))
    ids = torch.randint(0, 80, (2, 24), generator=torch.Generator().manual_seed(3))
    full = model(ids)
    cache = KVCache(4, 2, 32, 2, 32)
    pieces = [model(ids[:, :5], kv_cache=cache), model(ids[:, 5:9], kv_cache=cache)]
    pieces += [model(ids[:, t:t + 1], kv_cache=cache) for t in range(9, 24)]
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() < 1e-5


@torch.inference_mode()
def test_the_kv_cache_follows_the_newest_window_and_rotary_rules():
    """nanochat 92d63d4's model: S = a quarter of 320 rounded up to 128, rotary tables in float32; 200 tokens run
    past the window, and the cache must drop exactly the keys the full forward's mask drops."""
    config = GPTConfig(**{**BASE, "sequence_len": 320, "window_pattern": "SSL"},
                       **{k: v for k, v in RECIPES[NANOCHAT_NEWEST].items() if k in MODEL_FIELDS})
    model = jittered(config)
    assert model.window_sizes == [128, 128, 320, 320] and model.cos.dtype == torch.float32
    ids = torch.randint(0, 80, (2, 200), generator=torch.Generator().manual_seed(3))
    full = model(ids)
    cache = KVCache(4, 2, 320, 2, 32)
    pieces = [model(ids[:, :150], kv_cache=cache)] + [model(ids[:, t:t + 1], kv_cache=cache) for t in range(150, 200)]
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() < 1e-5


def test_features_change_the_model_and_the_defaults_are_nanochat():
    assert GPTConfig(**BASE).beyond_nanochat() == []
    assert GPTConfig(**BASE, smear=True, init="next").beyond_nanochat() == ["smear", "init"]
    ids = torch.randint(0, 80, (1, 16), generator=torch.Generator().manual_seed(4))
    base = jittered(GPTConfig(**BASE))(ids)
    for change in (dict(qk_scale=1.2), dict(rope_base=100000.0), dict(ve_gate_range=3.0)):
        other = copy_shared(jittered(GPTConfig(**BASE)), GPT(GPTConfig(**BASE, **change)).eval())
        assert (other(ids) - base).abs().max() > 1e-4, change


def test_later_init_is_nanochats_later_init():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**BASE, init="next"))
    assert model.resid_lambdas.tolist() == pytest.approx([1.15, 1.15 - 0.1 / 3, 1.15 - 0.2 / 3, 1.05])
    assert model.x0_lambdas.tolist() == pytest.approx([0.20, 0.15, 0.10, 0.05])
    assert model.transformer.wte.weight.std().item() == pytest.approx(0.8, rel=0.05)
    bound = 3**0.5 * 64**-0.5
    assert model.transformer.h[0].mlp.c_fc.weight.abs().max().item() <= 0.4 * bound
    gates = [b.attn.ve_gate.weight for b in model.transformer.h if b.attn.ve_gate is not None]
    assert all(g.min() >= 0 and g.max() <= 0.02 and g.max() > 0 for g in gates)


def test_tied_embeddings_share_one_matrix_that_trains_once_and_saves_once(tmp_path):
    run = replace(TensorRun(), depth=2, tie_embeddings=True, max_seq_len=32, vocab_size=96)
    model = build_model(run, 96)
    assert model.lm_head.weight is model.transformer.wte.weight
    groups = nanochat_param_groups(model, unembedding_lr=run.unembedding_lr, embedding_lr=run.embedding_lr,
                                   matrix_lr=run.matrix_lr, weight_decay=0.0, adam_betas=(0.8, 0.95),
                                   scalar_lr=run.scalar_lr)
    params = [p for g in groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params}) == len(list(model.parameters()))
    (tmp_path / "tokenizer").mkdir()
    save_model(tmp_path / "model", model, {"run": asdict(run)})
    from safetensors.torch import load_file

    assert "lm_head.weight" not in load_file(tmp_path / "model" / "model.safetensors")
    with pytest.raises(UserError, match="cannot load"):
        export_nanochat(model, 0, tmp_path / "nc")


def test_a_next_model_saves_loads_and_refuses_nanochats_layout(tmp_path):
    from nanochat_next.tokenizer.bpe import BPETokenizer

    run = replace(TensorRun(), depth=2, max_seq_len=32, smear=True, backout=True, qk_scale=1.2)
    model = jittered(model_config(run, 96))
    save_model(tmp_path / "model", model, {"run": asdict(run)})
    BPETokenizer.train("to be or not to be " * 50, 300).save(tmp_path / "tokenizer")
    loaded, _, config = load_trained(tmp_path, device="cpu")
    ids = torch.randint(0, 96, (1, 12), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        assert torch.equal(loaded(ids), model(ids))
    assert config["model_config"]["smear"] is True
    with pytest.raises(UserError, match=r"uses smear, backout, qk_scale, init .*--recipe nanochat"):
        export_nanochat(loaded, 0, tmp_path / "nc")


def test_muon_eq_equalizes_rows_and_muon_plus_fixes_the_norm():
    torch.manual_seed(0)
    g = torch.randn(2, 32, 48) * torch.linspace(0.1, 10, 32)[:, None]  # rows of very different norms
    eq = equalize_rows(g)
    row_norms = eq.norm(dim=-1)
    assert torch.allclose(row_norms, row_norms.mean(dim=-1, keepdim=True), rtol=1e-5)
    assert torch.allclose(eq.norm(dim=(-2, -1)), g.norm(dim=(-2, -1)), rtol=1e-5)
    fixed = semi_orthogonal_norm(orthogonalize(eq).float())
    assert torch.allclose(fixed.norm(dim=(-2, -1)), torch.full((2,), 32**0.5), rtol=1e-5)


@pytest.mark.parametrize("shape", [(3, 64, 96), (2, 96, 64)])  # wide and tall: two branches of the iteration
def test_float32_orthogonalisation_is_the_same_iteration_as_bfloat16(shape):
    """The fp32 path (chosen where bf16 is emulated) computes nanochat's bf16 iteration, without bf16's rounding:
    it agrees with a float64 run of the same iteration to fp32 precision and with the bf16 run to bf16's."""
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    exact = orthogonalize(g.double(), 5, torch.float64)
    fp32, bf16 = orthogonalize(g, 5, torch.float32), orthogonalize(g, 5, torch.bfloat16)
    assert fp32.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    assert (fp32.double() - exact).abs().max() < 1e-5
    # bf16 keeps 8 bits of mantissa (a relative rounding of up to 2^-9 per operation); fifteen products of 64-96
    # term sums compound it to ~4% of the matrix's norm (measured over seeds 0-4: 3.8-4.4%). 8% allows that twice
    # and still fails another iteration: one Polar Express step fewer is 40% away
    assert ((bf16.double() - exact).norm() / exact.norm()) < 0.08
    singular = torch.linalg.svdvals(fp32)
    assert singular.min() > 0.5 and singular.max() < 1.3, "Polar Express leaves singular values near 1"


def test_the_orthogonalisation_dtype_reaches_every_muon_group(tmp_path):
    from nanochat_next.train.recipe import build_optimizer, choose_orthogonalization

    run = replace(TensorRun(), depth=1, aspect_ratio=32, head_dim=32, max_seq_len=32, muon_dtype="float32")
    model = build_model(run, 96)
    opt = build_optimizer(run, model, 1.0, 0.0)
    choice = opt.orthogonalization
    assert choice.name == "float32" and "requested with --muon-dtype float32" in choice.reason
    muon_groups = [g for g in opt.param_groups if g["kind"] == "muon"]
    assert muon_groups and all(g["ortho_dtype"] == "float32" for g in muon_groups)
    nanochat = replace(run, **recipe_values("nanochat"))
    assert nanochat.muon_dtype == "bfloat16", "the nanochat recipe orthogonalises in bf16, as nanochat does"
    adamw = replace(run, optimizer="adamw")
    assert choose_orthogonalization(adamw, build_optimizer(adamw, model, 1.0, 0.0), torch.device("cpu")) is None


def test_muon_eq_changes_the_update_only_when_asked():
    torch.manual_seed(0)
    grad = torch.randn(1, 32, 48) * torch.linspace(0.1, 10, 32)[:, None]

    def step(equalize):
        params = torch.ones(1, 32, 48)
        f = torch.tensor
        muon_update(grad.clone(), params, torch.zeros(1, 32, 48), torch.zeros(1, 1, 48), f(0.95), f(0.1), f(0.0),
                    f(0.95), 5, equalize)
        return params

    assert torch.equal(step(False), step(False))
    assert (step(True) - step(False)).abs().max() > 1e-3


def test_schedules_follow_nanochat_then_and_later():
    run = replace(TensorRun(), steps=1000, warmdown_ratio=0.5)
    old, new = replace(run, muon_momentum="nanochat"), replace(run, muon_momentum="next")
    assert [muon_momentum(old, s) for s in (0, 150, 300, 900)] == pytest.approx([0.85, 0.90, 0.95, 0.95])
    assert [muon_momentum(new, s) for s in (0, 200, 450, 500, 750, 999)] == pytest.approx(
        [0.85, 0.91, 0.97, 0.97, 0.935, 0.90014])
    assert muon_momentum(replace(new, steps=200), 199) == pytest.approx(0.85 + 0.12 * 199 / 400)  # warmup first
    assert [muon_weight_decay(replace(run, wd_schedule="linear"), s, 1.0) for s in (0, 500)] == [1.0, 0.5]
    assert [muon_weight_decay(replace(run, wd_schedule="cosine"), s, 1.0) for s in (0, 250, 500, 1000)] == \
        pytest.approx([1.0, 0.853553, 0.5, 0.0], abs=1e-6)


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_sets_every_recipe_field(name):
    """A recipe is a whole bundle: switching to it leaves nothing of the one before (a field one recipe sets and
    another forgets would carry over silently)."""
    assert name == "next" or set(RECIPES[name]) - {"recipe"} == set(RECIPE_FIELDS)
    run = replace(TensorRun(), **recipe_values(name))
    assert run.beyond_recipe() == {} and run.recipe == name
    assert replace(replace(TensorRun(), smear=not run.smear, muon_norm=1.5), **recipe_values(name)) == run


def test_the_newest_recipe_trains_from_the_cli(tmp_path, capsys):
    """Three steps of nanochat 92d63d4's recipe: its Muon follows the compute dtype, its warmup is in steps."""
    out = tmp_path / "run"
    args = build_parser().parse_args(["train", "--recipe", NANOCHAT_NEWEST, "--steps", "3", "--depth", "1",
                                      "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "64",
                                      "--device-batch-size", "2", "--total-batch-size", "128", "--eval-tokens", "128",
                                      "--vocab-size", "300", "--dtype", "float32", "--out", str(out), "--no-progress"])
    args.func(args)
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["recipe"] == NANOCHAT_NEWEST and saved["lr_warmup_steps"] == 40 and saved["muon_dtype"] == "compute"
    log = capsys.readouterr().out
    assert "Muon orthogonalisation in float32 (the model's compute dtype (float32)" in log, log


def test_the_nanochat_recipe_is_a_complete_bundle():
    nanochat = replace(TensorRun(), **RECIPES["nanochat"])
    assert nanochat.beyond_recipe() == {}
    assert model_config(nanochat, 4096).beyond_nanochat() == []
    assert set(RECIPE_FIELDS) >= {"smear", "matrix_lr", "warmdown_ratio", "muon_eq"}
    assert replace(nanochat, smear=True).beyond_recipe() == {"smear": True}
    # a config file from before recipes existed was a nanochat run
    assert with_recipe_fields({"steps": 5})["smear"] is False
    assert with_recipe_fields({"steps": 5})["recipe"] == "nanochat"
    # a file from before a recipe field existed: the field takes its recipe's value, the file's own values stay
    assert with_recipe_fields({"recipe": "next"}) == recipe_values("next")
    old_nanochat_run = with_recipe_fields({"recipe": "nanochat", "smear": True})
    assert old_nanochat_run["muon_dtype"] == "bfloat16" and old_nanochat_run["smear"] is True


def test_train_recipe_flag_sets_the_bundle_and_single_flags_change_it(tmp_path):
    """--recipe nanochat over a file that had smear on, then backout on top: the bundle replaces the file's
    recipe fields and the later flag wins."""
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"recipe": "next", "steps": 1, "smear": True, "matrix_lr": 0.05}))
    args = build_parser().parse_args(["train", "--config", str(base), "--recipe", "nanochat", "--backout"])
    mode, config, overrides = resolve_run(args)
    assert (config.recipe, config.smear, config.backout, config.matrix_lr) == ("nanochat", False, True, 0.02)
    assert config.beyond_recipe() == {"backout": True} and overrides == {"recipe": "nanochat", "backout": True}
    plain = resolve_run(build_parser().parse_args(["train", "--steps", "3"]))[1]
    assert plain.recipe == "next" and plain == replace(TensorRun(), steps=3)
    back = tmp_path / "back.json"  # --recipe next over a nanochat file resets every recipe field
    back.write_text(json.dumps({**RECIPES["nanochat"], "matrix_lr": 0.05}))
    args = build_parser().parse_args(["train", "--config", str(back), "--recipe", "next"])
    assert resolve_run(args)[1] == TensorRun()
    old = tmp_path / "old.json"  # written before recipes: nanochat's
    old.write_text(json.dumps({"steps": 2}))
    assert resolve_run(build_parser().parse_args(["train", "--config", str(old)]))[1].recipe == "nanochat"
