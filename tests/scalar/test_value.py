"""Scalar autograd against torch autograd (float64): random graphs, deep graphs, fan-out, fused nodes."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nanochat_next.scalar.value import Value, cross_entropy, dot, linear, rmsnorm, softmax, vsum

# Binary and unary ops, each written once and applied to Values and to torch scalars alike.
# Inputs to log/pow/div are kept positive so every random graph is well defined.
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 0.5),
    "radd": lambda a, b: 1.5 + a,
    "rsub": lambda a, b: 0.25 - b,
    "rdiv": lambda a, b: 2.0 / (a * a + 1.0),
}
UNARY = {
    "neg": lambda a: -a,
    "exp": lambda a: (a * 0.3).tanh().exp() if isinstance(a, Value) else torch.exp(torch.tanh(a * 0.3)),
    "log": lambda a: (a * a + 0.5).log() if isinstance(a, Value) else torch.log(a * a + 0.5),
    "relu": lambda a: a.relu(),
    "tanh": lambda a: a.tanh(),
    "pow": lambda a: (a * a + 0.5) ** 1.5,
    "square": lambda a: a**2,
}
OPS = sorted(BINARY) + sorted(UNARY)


def close(a: float, b: float, tol: float = 1e-10) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


@settings(max_examples=200, deadline=None)
@given(leaves=st.lists(st.floats(-2, 2), min_size=1, max_size=5),
       program=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 10**6), st.integers(0, 10**6)),
                        min_size=1, max_size=25),
       reduce_all=st.booleans())
def test_random_graphs_match_torch(leaves, program, reduce_all):
    ours = [Value(x) for x in leaves]
    theirs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in leaves]
    nodes_o, nodes_t = list(ours), list(theirs)
    for op, i, j in program:
        a_o, a_t = nodes_o[i % len(nodes_o)], nodes_t[i % len(nodes_t)]
        b_o, b_t = nodes_o[j % len(nodes_o)], nodes_t[j % len(nodes_t)]
        if op in BINARY:
            nodes_o.append(BINARY[op](a_o, b_o))
            nodes_t.append(BINARY[op](a_t, b_t))
        else:
            nodes_o.append(UNARY[op](a_o))
            nodes_t.append(UNARY[op](a_t))
    # reduce_all sums every node: heavy fan-out (each node feeds several others and the output)
    out_o = vsum(nodes_o) if reduce_all else nodes_o[-1]
    out_t = torch.stack(nodes_t).sum() if reduce_all else nodes_t[-1]
    assert close(out_o.data, out_t.item())
    out_o.backward()
    if out_t.requires_grad:
        out_t.backward()
    for o, t in zip(ours, theirs):
        expected = t.grad.item() if t.grad is not None else 0.0
        assert close(o.grad, expected), (o.grad, expected)


def test_graph_deeper_than_the_recursion_limit():
    depth = sys.getrecursionlimit() * 5
    x = Value(0.3)
    y = x
    for _ in range(depth):
        y = (y * 0.999 + 0.001).tanh()
    y.backward()
    xt = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    yt = xt
    for _ in range(depth):
        yt = torch.tanh(yt * 0.999 + 0.001)
    yt.backward()
    assert close(y.data, yt.item()) and close(x.grad, xt.grad.item())


def test_fan_out_accumulates():
    a = Value(1.5)
    b = a * a + a * 3.0  # a used three times
    c = b * a
    c.backward()
    # c = a^3 + 3a^2 -> dc/da = 3a^2 + 6a
    assert close(a.grad, 3 * 1.5**2 + 6 * 1.5)


def _torch(xs):
    return torch.tensor(xs, dtype=torch.float64, requires_grad=True)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 9), m=st.integers(1, 5), data=st.data())
def test_fused_nodes_match_torch(n, m, data):
    floats = st.floats(-3, 3)
    xs = data.draw(st.lists(floats, min_size=n, max_size=n))
    ws = data.draw(st.lists(st.lists(floats, min_size=n, max_size=n), min_size=m, max_size=m))
    target = data.draw(st.integers(0, n - 1))
    weights = data.draw(st.lists(st.floats(0, 5), min_size=n, max_size=n))
    coef = data.draw(st.lists(floats, min_size=n, max_size=n))

    x, w = [Value(v) for v in xs], [[Value(v) for v in row] for row in ws]
    xt, wt = _torch(xs), _torch(ws)
    ce_t = torch.nn.functional.cross_entropy(xt.unsqueeze(0), torch.tensor([target]))
    soft_t = torch.tensor(weights, dtype=torch.float64) @ (torch.logsumexp(xt, 0) - xt)
    norm_t = xt * (xt.pow(2).mean() + 1e-5).rsqrt()
    out_t = ((wt @ xt).sum() + (wt[0] @ xt) * 0.5 + xt.sum() + (torch.tensor(coef, dtype=torch.float64)
             @ torch.softmax(xt, 0)) + ce_t + soft_t + (torch.tensor(coef, dtype=torch.float64) @ norm_t))
    out = (vsum(linear(x, w)) + dot(w[0], x) * 0.5 + vsum(x) + vsum(c * p for c, p in zip(coef, softmax(x)))
           + cross_entropy(x, target) + cross_entropy(x, weights) + vsum(c * r for c, r in zip(coef, rmsnorm(x))))
    assert close(out.data, out_t.item(), 1e-9)
    out.backward()
    out_t.backward()
    for a, b in zip(x, xt.grad.tolist()):
        assert close(a.grad, b, 1e-9)
    for row, grow in zip(w, wt.grad.tolist()):
        for a, b in zip(row, grow):
            assert close(a.grad, b, 1e-9)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = [Value(1000.0), Value(-1000.0), Value(999.0)]
    loss = cross_entropy(logits, 2)
    expected = -torch.log_softmax(torch.tensor([1000.0, -1000.0, 999.0], dtype=torch.float64), 0)[2].item()
    assert close(loss.data, expected)  # a naive exp(1000) would overflow
    loss.backward()
    assert close(logits[2].grad, math.exp(-expected) - 1.0) and close(logits[1].grad, 0.0)


def test_pow_rejects_value_exponent():
    with pytest.raises(TypeError, match="exponent must be a number"):
        Value(2.0) ** Value(3.0)
