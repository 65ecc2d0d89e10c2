"""MuonAdamW: Muon for the hidden weight matrices, AdamW for everything else (nanochat's optimizer).

One ``torch.optim.Optimizer`` with two kinds of parameter group:

- ``kind="adamw"``: decoupled weight decay ``p *= 1 - lr * wd``, then Adam with bias correction.
- ``kind="muon"``: for groups of same-shaped 2-D matrices, stacked and updated together:
  1. Nesterov momentum: ``buf = lerp(buf, g, 1 - m)``, update direction ``lerp(g, buf, m)``;
  2. orthogonalisation by 5 Polar Express iterations (Amsel et al. 2025, arXiv:2505.16932), after scaling the
     matrix to spectral norm <= 1 (Frobenius norm x 1.02), in the group's ``ortho_dtype``: bfloat16 as nanochat
     2f09686 always does, or float32 where the machine runs bf16 slowly (``runtime.choose_muon_dtype``: on a
     CPU without native bf16 the bf16 iterations are emulated and cost 40-60x fp32's time). In float32 a long
     matrix (an MLP's, 4:1) iterates on its small Gram matrix (``polar_express_gram``: a third fewer FLOPs, the
     same polynomial);
  3. NorMuon variance reduction (arXiv:2510.05491): a factored second moment per row (tall matrices) or
     per column (wide ones), rescaled so the update's overall norm is kept;
  4. cautious weight decay: decay only where the update and the weight have the same sign;
  5. the step, with the learning rate scaled by ``sqrt(max(1, rows / cols))``.

``equalize=True`` (a group option, off in nanochat 2f09686) adds what nanochat adopted later: MuonEq row
equilibration before step 2 (each row rescaled to the mean row norm: a better-conditioned spectrum) and
Muon+ after it (the Frobenius norm snapped to sqrt(min(rows, cols)), an exact semi-orthogonal matrix's).

Learning-rate, momentum and weight-decay schedules are the training loop's business (it sets the group
values before each step), as in nanochat.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Polar Express coefficients for 5 iterations (safety factor 2e-2, cushion 2), from the paper
POLAR_EXPRESS = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]


ORTHO_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
GRAM_RATIO = 2  # long side / short side from which the float32 iteration runs on the Gram matrix
GRAM_RESTART = 3  # the Gram form recomputes A from x before this step (its float32 rounding otherwise compounds)


def orthogonalize(g: Tensor, steps: int = 5, dtype: torch.dtype = torch.bfloat16, norm_factor: float = 1.02) -> Tensor:
    """Approximately U V^T of g = U S V^T (batched over the leading dim), computed in ``dtype``.

    Each iteration maps every singular value s to a s + b s^3 + c s^5 (an odd polynomial leaves U and V alone);
    the five coefficient triples push all of [0, 1] towards 1 as fast as possible, so after five steps the
    matrix is close to U V^T without ever computing an SVD."""
    x = g.to(dtype)
    # spectral norm <= Frobenius norm: s in [0, 1] (the factor keeps a margin: 1.02 in 2f09686, 1.01 in 92d63d4)
    x = x / (x.norm(dim=(-2, -1), keepdim=True) * norm_factor + 1e-6)
    short, long = sorted(g.shape[-2:])
    if dtype == torch.float32 and long >= GRAM_RATIO * short:
        return polar_express_gram(x, steps)
    return polar_express(x, steps)


def polar_express(x: Tensor, steps: int) -> Tensor:
    """The iteration as nanochat writes it: each step x <- a x + (b A + c A^2) x with A = x x^T, the small Gram
    matrix (rows x rows; cols x cols for a tall matrix)."""
    tall = x.size(-2) > x.size(-1)
    for a, b, c in POLAR_EXPRESS[:steps]:
        if tall:
            gram = x.mT @ x
            x = a * x + x @ (b * gram + c * (gram @ gram))
        else:
            gram = x @ x.mT
            x = a * x + (b * gram + c * (gram @ gram)) @ x
    return x


def polar_express_gram(x: Tensor, steps: int) -> Tensor:
    """The same iteration carried out on the Gram matrix (m x m, m the short side): fewer FLOPs when the matrix
    is much longer than it is wide (an MLP's 256 x 1024: a third fewer).

    Each step multiplies x on the short side by Q = a I + b A + c A^2, a polynomial in A = x x^T. So the new Gram
    matrix is Q A Q^T = Q^2 A (Q is symmetric and commutes with A), and several steps are one product
    Q_k ... Q_1 applied to x at the end: the m x m products iterate without touching the long side of x. Exact in
    exact arithmetic; in float32 the Gram matrix's rounding grows with Q^2 each step and is never corrected, so
    after ``GRAM_RESTART`` steps the product is applied and A recomputed from x (measured, relative to a float64
    reference, spectra down to 1e-3: 1e-5 with the restart, 2-4e-4 without, 5-7e-6 step by step; bf16 ~1e-2).
    Used in float32 only: in bf16 the squared conditioning of A is too coarse. Tried on 2026-12-04 (an A/B kept
    in issue #26's note, not in results/; an EPYC, the cpu profile's `next` run, seeds 42 and 43): with the bf16
    Gram form training stopped learning (val bpb 3.6235 from step 50 on, vs 2.25-2.27 with the standard bf16
    form), though on synthetic matrices its error looked like the standard form's (6e-2 vs 4e-2 relative to
    float64) and it ran 1.5x faster."""
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    eye = torch.eye(x.size(-2), dtype=x.dtype, device=x.device)
    gram, product = x @ x.mT, None
    for i, (a, b, c) in enumerate(POLAR_EXPRESS[:steps]):
        if i == GRAM_RESTART:  # apply what we have to x and start again from its exact Gram matrix
            x = product @ x
            gram, product = x @ x.mT, None
        q = a * eye + b * gram + c * (gram @ gram)
        product = q if product is None else q @ product
        if i < steps - 1 and i + 1 != GRAM_RESTART:
            gram = q @ (q @ gram)  # the Gram matrix of the new x: Q^2 A
    x = product @ x
    return x.mT if tall else x


def equalize_rows(g: Tensor) -> Tensor:
    """MuonEq: every row rescaled to the matrix's mean row norm (the total norm is kept)."""
    # the norm each row would have if all rows were equal: total norm / sqrt(rows)
    target = g.float().norm(dim=(-2, -1), keepdim=True) / g.size(-2) ** 0.5
    # one loud row (a frequent token's gradient) no longer dominates the spectrum the iteration sees
    return g * (target / g.float().norm(dim=-1, keepdim=True).clamp_min(1e-6)).to(g.dtype)


def semi_orthogonal_norm(g: Tensor) -> Tensor:
    """Muon+: the Frobenius norm set to sqrt(min(rows, cols)), an exactly semi-orthogonal matrix's."""
    norm = g.float().norm(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    # U V^T has min(rows, cols) singular values of 1: its Frobenius norm is their root sum of squares. Five
    # iterations leave the values spread around 1; this corrects the overall scale they land at
    return g * (min(g.size(-2), g.size(-1)) ** 0.5 / norm).to(g.dtype)


def _f32(value: float) -> Tensor:
    """Hyperparameters enter the arithmetic as float32 0-D tensors, as in nanochat (same rounding; and a
    compiled update does not recompile when a learning rate changes)."""
    return torch.tensor(value, dtype=torch.float32)


# a compiled kernel: each hyperparameter is its own 0-D tensor argument, so one graph serves every step
def adamw_update(p: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step_t: Tensor,  # noqa: PLR0913
                 lr_t: Tensor, beta1: Tensor, beta2: Tensor, eps: Tensor, wd_t: Tensor) -> None:
    """One AdamW step in place; every hyperparameter is a float32 0-D tensor."""
    p.mul_(1 - lr_t * wd_t)  # decoupled weight decay: shrink the weight itself, not through the gradient
    exp_avg.lerp_(grad, 1 - beta1)  # first moment: a running mean of the gradient (momentum)
    exp_avg_sq.lerp_(grad.square(), 1 - beta2)  # second moment: a running mean of its square (its scale)
    # both running means start at 0 and would be too small early on: divide by (1 - beta^step) to unbias them
    denom = (exp_avg_sq / (1 - beta2**step_t)).sqrt() + eps
    # each coordinate moves by about lr: mean gradient / its typical size
    p.add_(exp_avg / denom, alpha=-(lr_t / (1 - beta1**step_t)))


# a compiled kernel: each hyperparameter is its own 0-D tensor argument, so one graph serves every step
def muon_update(grads: Tensor, params: Tensor, momentum_buffer: Tensor, second_moment: Tensor,  # noqa: PLR0913
                momentum: Tensor, lr: Tensor, weight_decay: Tensor, beta2: Tensor, ns_steps: int,
                equalize: bool = False, ortho_dtype: torch.dtype = torch.bfloat16, norm_factor: float = 1.02) -> None:
    """One Muon step on stacked (n, rows, cols) grads/params; updates params and buffers in place.
    Hyperparameters are float32 0-D tensors."""
    # Nesterov momentum: the buffer is a running mean of gradients; the update looks one step ahead along it
    m = momentum.to(grads.dtype)
    momentum_buffer.lerp_(grads, 1 - m)
    g = grads.lerp_(momentum_buffer, m)
    if equalize:  # MuonEq: rows of equal norm go in, so the iteration sees a better-conditioned matrix
        g = equalize_rows(g)
    # the heart of Muon: replace the update by the nearest (semi-)orthogonal matrix, so every direction of the
    # weight moves by the same amount instead of the few directions a raw gradient is dominated by
    g = orthogonalize(g, ns_steps, ortho_dtype, norm_factor)
    if equalize:  # Muon+: the norm an exactly orthogonal update would have
        g = semi_orthogonal_norm(g)
    # NorMuon: after orthogonalisation the neurons (rows of a tall matrix, columns of a wide one) still get updates
    # of uneven size; an Adam-like second moment per neuron evens them out, then the total norm is put back
    red_dim = -1 if params.size(-2) >= params.size(-1) else -2
    b2 = beta2.to(g.dtype)  # the orthogonalisation's dtype (bfloat16 in nanochat)
    v_mean = g.float().square().mean(dim=red_dim, keepdim=True)  # this step's mean square per neuron
    red_size = g.size(red_dim)
    v_norm = (v_mean.sum(dim=(-2, -1), keepdim=True) * red_size).sqrt()  # the update's Frobenius norm
    second_moment.lerp_(v_mean.to(second_moment.dtype), 1 - b2)  # the running mean square per neuron
    step_size = second_moment.clamp_min(1e-10).rsqrt()  # 1 / RMS: a loud neuron's update shrinks
    v_norm_new = ((v_mean * red_size) * step_size.float().square()).sum(dim=(-2, -1), keepdim=True).sqrt()
    g = g * (step_size * (v_norm / v_norm_new.clamp_min(1e-10))).to(g.dtype)  # evened out, the norm restored
    # cautious weight decay: decay a weight only where the update pushes the same way (towards zero), so decay
    # never fights the gradient; then the step
    lr_t, wd_t = lr.to(g.dtype), weight_decay.to(g.dtype)
    mask = (g * params) >= 0
    params.sub_(lr_t * g + lr_t * wd_t * params * mask)


class MuonAdamW(torch.optim.Optimizer):
    """Parameter groups carry ``kind`` ("adamw" or "muon") and that kind's hyperparameters."""

    def __init__(self, param_groups: list[dict], compile: bool = False):
        """``compile=True`` runs each update as one compiled graph (as nanochat does): fewer passes over
        memory and no Python between ops; the numbers then differ from the eager update in the last bits."""
        self.adamw_update = torch.compile(adamw_update, dynamic=False, fullgraph=True) if compile else adamw_update
        self.muon_update = torch.compile(muon_update, dynamic=False, fullgraph=True) if compile else muon_update
        for group in param_groups:
            if group.get("kind") not in ("adamw", "muon"):
                raise ValueError(f"every group needs kind 'adamw' or 'muon', got {group.get('kind')!r}")
            if group["kind"] == "muon" and len({tuple(p.shape) for p in group["params"]}) > 1:
                raise ValueError("a muon group must hold parameters of one shape (they are stacked)")
        super().__init__(param_groups, defaults={})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ARG002 - torch's signature
        for group in self.param_groups:
            if group["kind"] == "adamw":
                self._adamw(group)
            else:
                self._muon(group)

    def _adamw(self, group: dict) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1  # counted per parameter: the bias correction needs it
            self.adamw_update(p, p.grad, state["exp_avg"], state["exp_avg_sq"], _f32(state["step"]), _f32(group["lr"]),
                              _f32(group["betas"][0]), _f32(group["betas"][1]), _f32(group["eps"]),
                              _f32(group["weight_decay"]))

    def _muon(self, group: dict) -> None:
        params = group["params"]
        if not params or any(p.grad is None for p in params):
            return
        state = self.state[params[0]]  # one state for the whole group: its matrices are updated as one stack
        rows, cols = params[0].shape[-2:]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros(len(params), rows, cols, dtype=params[0].dtype,
                                                   device=params[0].device)
            shape = (len(params), rows, 1) if rows >= cols else (len(params), 1, cols)
            state["second_momentum_buffer"] = torch.zeros(shape, dtype=params[0].dtype, device=params[0].device)
        stacked = torch.stack(list(params))  # (n, rows, cols): one batched orthogonalisation for the group
        # a tall matrix's orthogonal update has entries ~1/sqrt(rows): scale it back up to the same RMS change
        lr = group["lr"] * max(1.0, rows / cols) ** 0.5
        self.muon_update(torch.stack([p.grad for p in params]), stacked, state["momentum_buffer"],
                         state["second_momentum_buffer"], _f32(group["momentum"]), _f32(lr),
                         _f32(group["weight_decay"]), _f32(group["beta2"]), group["ns_steps"],
                         group.get("equalize", False), ORTHO_DTYPES[group.get("ortho_dtype", "bfloat16")],
                         group.get("norm_factor", 1.02))
        torch._foreach_copy_(params, list(stacked.unbind(0)))  # the stack was a copy: write the results back


def stacked_shapes(param_groups: list[dict]) -> list[tuple[int, int, int]]:
    """(matrices, rows, cols) of every Muon group: what one optimizer step orthogonalises."""
    return [(len(g["params"]), *g["params"][0].shape[-2:]) for g in param_groups
            if g.get("kind") == "muon" and g["params"]]


def orthogonalize_items(shapes: list[tuple[int, int, int]]) -> list:
    """The dtype probe's work for these stacked shapes (``dtype_choice.race``): each shape's orthogonalisation with
    2 matrices stacked (a batched product, as in the step) and no side above 512 (the aspect kept), weighted back
    to the whole group; cheapest first, so an early stop costs little."""
    from nanochat_next.dtype_choice import WorkItem

    gen = torch.Generator().manual_seed(0)
    items = []
    for n, rows, cols in set(shapes):
        scale = min(1.0, 512 / max(rows, cols))
        r, c, stack = max(1, round(rows * scale)), max(1, round(cols * scale)), min(n, 2)
        g = torch.randn(stack, r, c, generator=gen)
        # the iteration's cost grows as rows x cols x min(rows, cols): scale^3 for a shape scaled by `scale`
        weight = shapes.count((n, rows, cols)) * n / stack / scale**3
        flops = 5 * 2 * stack * (2 * r * c * min(r, c) + min(r, c) ** 3)  # 5 iterations of 3 products
        items.append((flops, WorkItem(lambda dtype, g=g: orthogonalize(g, 5, dtype), weight, flops)))
    return [item for _, item in sorted(items, key=lambda pair: pair[0])]
