"""``train --compile``'s forward (``train.config.compile_forward``, with its inductor options, the soft cap's
tanh written as 2 / (1 + exp(-2x)) - 1): the same loss and gradients as the eager model, in float32, over logits
that reach deep into the cap's saturation as well as its linear middle."""

from __future__ import annotations

import torch

from nanochat_next.train.config import COMPILE_OPTIONS, TensorRun, build_model, compile_forward


def loss_and_grads(forward, model, x, y) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = forward(x, y)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_compiled_forward_has_the_eager_loss_and_gradients():
    torch.manual_seed(0)
    run = TensorRun(depth=2, aspect_ratio=32, head_dim=32, max_seq_len=64, compile=True)
    model = build_model(run, 512)
    with torch.no_grad():  # nanochat's init starts the head at 0 (every logit 0): spread the logits over [-60, 60]
        model.lm_head.weight.normal_(0, 4.0)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, 512, (2, 64), generator=gen), torch.randint(0, 512, (2, 64), generator=gen)
    y[0, :5] = -1  # positions that are not trained
    with torch.no_grad():
        logits = model(x)
    raw = 15 * torch.atanh(logits.clamp(-14.999, 14.999) / 15)  # before the cap
    assert raw.abs().max() > 30 and (raw.abs() < 1).any()  # both ends of tanh are exercised

    eager_loss, eager_grads = loss_and_grads(model, model, x, y)
    compiled_loss, compiled_grads = loss_and_grads(compile_forward(model), model, x, y)
    assert COMPILE_OPTIONS["cpp.use_decompose_tanh"]
    # float32 throughout: the compiled graph only reorders sums and evaluates tanh another way
    assert abs(compiled_loss - eager_loss) <= 1e-5 * abs(eager_loss)
    assert eager_grads.keys() == compiled_grads.keys()
    # a gradient that is a sum of many cancelling terms (a per-layer scalar's) keeps an absolute error of the
    # largest gradient's rounding, not a relative one of its own size
    largest = max(g.abs().max().item() for g in eager_grads.values())
    for name, grad in eager_grads.items():
        torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-4, atol=1e-5 * largest, msg=name)
