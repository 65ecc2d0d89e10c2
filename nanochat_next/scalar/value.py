"""Scalar reverse-mode autograd: a ``Value`` is one number plus its gradient, a node in a graph.

In the spirit of karpathy's micrograd/microgpt, with two changes that make scalar models pleasant to train:

- **Fused nodes.** ``dot`` (and ``linear`` built on it), ``vsum``, ``softmax`` and ``cross_entropy`` are
  single nodes that know their own local gradients. A 16-wide dot product is one node with 32 edges
  instead of 32 nodes (16 multiplies, 16 adds); the math is the same, the Python overhead much lower.
- **No recursion.** ``backward`` sorts the graph with an explicit stack, so graphs of any depth work.

Every node stores its inputs (``_prev``) and the local derivative of its output with respect to each
input (``_local``); ``backward`` walks the graph in reverse topological order applying the chain rule
``input.grad += local * output.grad``. Gradients accumulate until ``zero_grad`` (as in PyTorch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from operator import mul


class Value:
    __slots__ = ("data", "grad", "_prev", "_local")

    def __init__(self, data: float, prev: tuple[Value, ...] = (), local: tuple[float, ...] = ()):
        self.data = data
        self.grad = 0.0
        self._prev = prev
        self._local = local

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other: Value | float) -> Value:
        if isinstance(other, Value):
            return Value(self.data + other.data, (self, other), (1.0, 1.0))
        return Value(self.data + other, (self,), (1.0,))

    def __mul__(self, other: Value | float) -> Value:
        if isinstance(other, Value):
            return Value(self.data * other.data, (self, other), (other.data, self.data))
        return Value(self.data * other, (self,), (other,))

    def __pow__(self, exponent: float) -> Value:
        if isinstance(exponent, Value):
            raise TypeError("Value ** Value is not supported; the exponent must be a number")
        return Value(self.data**exponent, (self,), (exponent * self.data ** (exponent - 1),))

    def __truediv__(self, other: Value | float) -> Value:
        if isinstance(other, Value):
            return Value(self.data / other.data, (self, other), (1.0 / other.data, -self.data / other.data**2))
        return Value(self.data / other, (self,), (1.0 / other,))

    def __rtruediv__(self, other: float) -> Value:
        return Value(other / self.data, (self,), (-other / self.data**2,))

    def __neg__(self) -> Value:
        return Value(-self.data, (self,), (-1.0,))

    def __sub__(self, other: Value | float) -> Value:
        if isinstance(other, Value):
            return Value(self.data - other.data, (self, other), (1.0, -1.0))
        return Value(self.data - other, (self,), (1.0,))

    def __rsub__(self, other: float) -> Value:
        return Value(other - self.data, (self,), (-1.0,))

    __radd__ = __add__
    __rmul__ = __mul__

    # ------------------------------------------------------------------ elementwise functions
    def exp(self) -> Value:
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def log(self) -> Value:
        return Value(math.log(self.data), (self,), (1.0 / self.data,))

    def relu(self) -> Value:
        return Value(self.data if self.data > 0 else 0.0, (self,), (1.0 if self.data > 0 else 0.0,))

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,))

    # ------------------------------------------------------------------ backward
    def topological_order(self) -> list[Value]:
        """Every node this one depends on, inputs before outputs (iterative depth-first search)."""
        order: list[Value] = []
        visited: set[int] = set()
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            for child in node._prev:
                if id(child) not in visited:
                    stack.append((child, False))
        return order

    def backward(self) -> None:
        """Accumulate d(self)/d(node) into node.grad for every node of the graph."""
        self.grad += 1.0
        for node in reversed(self.topological_order()):
            g = node.grad
            if g:
                for child, local in zip(node._prev, node._local):
                    child.grad += local * g


# ---------------------------------------------------------------------- fused nodes
def dot(ws: Sequence[Value], xs: Sequence[Value]) -> Value:
    """sum_i ws[i] * xs[i] as one node."""
    wd = [w.data for w in ws]
    xd = [x.data for x in xs]
    return Value(sum(map(mul, wd, xd)), (*ws, *xs), (*xd, *wd))


def linear(x: Sequence[Value], weight: Sequence[Sequence[Value]]) -> list[Value]:
    """weight @ x for a weight stored as rows (out_features x in_features), one dot node per output."""
    x = tuple(x)
    xd = tuple(v.data for v in x)
    out = []
    for row in weight:
        wd = [w.data for w in row]
        out.append(Value(sum(map(mul, wd, xd)), (*row, *x), (*xd, *wd)))
    return out


def vsum(xs: Iterable[Value]) -> Value:
    """sum of Values as one node."""
    xs = tuple(xs)
    return Value(sum(x.data for x in xs), xs, (1.0,) * len(xs))


def softmax_data(xs: Sequence[float]) -> list[float]:
    """Numerically stable softmax of plain floats (subtracts the max first)."""
    m = max(xs)
    exps = [math.exp(x - m) for x in xs]
    total = sum(exps)
    return [e / total for e in exps]


def softmax(xs: Sequence[Value]) -> list[Value]:
    """Softmax as n nodes; output i has local gradients p_i * (delta_ij - p_j) w.r.t. input j."""
    xs = tuple(xs)
    probs = softmax_data([x.data for x in xs])
    out = []
    for i, p in enumerate(probs):
        local = [-p * q for q in probs]
        local[i] += p
        out.append(Value(p, xs, tuple(local)))
    return out


def cross_entropy(logits: Sequence[Value], target: int | Sequence[float]) -> Value:
    """-log softmax(logits)[target] as one node, computed stably through log-sum-exp.

    ``target`` may also be a sequence of non-negative weights w (e.g. counts): the node is then
    sum_j w_j * (logsumexp(logits) - logits_j), with gradient sum(w) * softmax - w.
    """
    logits = tuple(logits)
    data = [x.data for x in logits]
    m = max(data)
    exps = [math.exp(x - m) for x in data]
    total = sum(exps)
    lse = m + math.log(total)
    probs = [e / total for e in exps]
    if isinstance(target, int):
        local = probs
        local[target] -= 1.0
        return Value(lse - data[target], logits, tuple(local))
    weights = list(target)
    w_total = sum(weights)
    loss = sum(w * (lse - x) for w, x in zip(weights, data) if w)
    return Value(loss, logits, tuple(w_total * p - w for p, w in zip(probs, weights)))


def rmsnorm(x: Sequence[Value], eps: float = 1e-5) -> list[Value]:
    """x / sqrt(mean(x^2) + eps), parameter-free (as in microgpt and nanochat)."""
    scale = (dot(x, x) * (1.0 / len(x)) + eps) ** -0.5
    return [xi * scale for xi in x]
