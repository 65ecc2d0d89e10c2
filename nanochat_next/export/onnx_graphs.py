"""ONNX export: two graphs, prefill and one-token decode, with the KV cache as inputs and outputs.

- ``prefill.onnx``: ``input_ids`` (B, T) -> ``logits`` (B, T, vocab), ``present_k``/``present_v``
  (n_layer, B, n_kv_head, T, head_dim) and ``last_embedding`` (B, 1, n_embd).
- ``decode.onnx``: ``input_ids`` (B, 1), ``past_k``/``past_v`` with P positions and ``prev_embedding`` ->
  ``logits`` (B, 1, vocab), the cache with P + 1 positions and the new ``last_embedding``.

A generation loop feeds each graph's ``present_*`` and ``last_embedding`` back as the next ``past_*`` and
``prev_embedding`` (the latter only where the graph has that input: the smear feature; the others ignore
it and the exporter drops it). Masks (causal and sliding-window) and positions are computed inside the graphs.
Both graphs trace ``portable.PortableGPT`` with ``torch.onnx.export`` (the dynamo exporter; weights stored
inside each .onnx file, so a browser fetches two files and nothing else).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nanochat_next.atomic import write_text
from nanochat_next.errors import UserError
from nanochat_next.export.portable import PortableGPT

FORMAT = "nanochat-next/onnx"
VERSION = 1
OPSET = 18
INPUTS = ["input_ids", "past_k", "past_v", "prev_embedding"]
OUTPUTS = ["logits", "present_k", "present_v", "last_embedding"]


class Prefill(nn.Module):
    """The first call of a sequence: an empty cache is made inside the graph."""

    def __init__(self, model: PortableGPT):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor):
        m, batch = self.model, input_ids.size(0)
        empty = torch.zeros(m.n_layer, batch, m.n_kv_head, 0, m.head_dim)
        return m(input_ids, empty, empty, torch.zeros(batch, 1, m.config["n_embd"]))


def example_state(model: PortableGPT, batch: int = 2, past: int = 3):
    """Inputs of the shapes the graphs are traced with (sizes of at least 2: torch.export fixes a size-1 dim)."""
    ids = torch.zeros(batch, past, dtype=torch.long)
    with torch.no_grad():
        _, k, v, e = model(ids, *model.empty_cache(batch))
    return torch.zeros(batch, 1, dtype=torch.long), k, v, e


def export_graphs(model: PortableGPT, out: Path) -> list[Path]:
    """prefill.onnx and decode.onnx into ``out``; each a single file with its weights."""
    import warnings

    batch = torch.export.Dim("batch", min=1, max=1024)
    tokens = torch.export.Dim("tokens", min=1, max=model.max_positions)
    past = torch.export.Dim("past", min=1, max=model.max_positions - 1)
    model = model.eval()
    step, k, v, e = example_state(model)
    out.mkdir(parents=True, exist_ok=True)
    graphs = {
        "prefill.onnx": (Prefill(model), (torch.zeros(2, 3, dtype=torch.long),), ["input_ids"],
                         {"input_ids": {0: batch, 1: tokens}}),
        "decode.onnx": (model, (step, k, v, e), INPUTS,
                        {"input_ids": {0: batch}, "past_k": {1: batch, 3: past}, "past_v": {1: batch, 3: past},
                         "prev_embedding": {0: batch}}),
    }
    paths = []
    for name, (module, args, inputs, dynamic) in graphs.items():
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter
            torch.onnx.export(module, args, str(out / name), input_names=inputs, output_names=OUTPUTS,
                              dynamic_shapes=dynamic, opset_version=OPSET, dynamo=True, external_data=False,
                              verbose=False)
        paths.append(out / name)
    return paths


def write_onnx_config(model: PortableGPT, out: Path, bos_id: int, stop_ids: list[int]) -> Path:
    """onnx_config.json: what a client needs to run the graphs (shapes, limits, token ids)."""
    doc = {"format": FORMAT, "version": VERSION, "style": model.style, "opset": OPSET,
           "vocab_size": model.vocab_size, "n_layer": model.n_layer, "n_kv_head": model.n_kv_head,
           "head_dim": model.head_dim, "n_embd": model.config["n_embd"],
           "context": model.config["sequence_len"], "max_positions": model.max_positions,
           "bos_id": bos_id, "stop_ids": stop_ids, "graphs": {"prefill": "prefill.onnx", "decode": "decode.onnx"},
           "inputs": INPUTS, "outputs": OUTPUTS}
    write_text(out / "onnx_config.json", json.dumps(doc, indent=2) + "\n")
    return out / "onnx_config.json"


class OnnxModel:
    """The two graphs in onnxruntime, with the generation loop every client implements."""

    def __init__(self, directory: str | Path):
        import onnxruntime as ort

        directory = Path(directory)
        try:
            self.config = json.loads((directory / "onnx_config.json").read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"no ONNX export at {directory} (onnx_config.json: {exc})") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.sessions = {name: ort.InferenceSession(str(directory / file), options, providers=["CPUExecutionProvider"])
                         for name, file in self.config["graphs"].items()}

    def run(self, name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        session = self.sessions[name]
        wanted = {i.name for i in session.get_inputs()}
        return session.run(None, {k: v for k, v in feeds.items() if k in wanted})

    def logits(self, ids: list[int]) -> np.ndarray:
        """(T, vocab) logits of one sequence, by the prefill graph."""
        return self.run("prefill", {"input_ids": np.array([ids], dtype=np.int64)})[0][0]

    def greedy(self, prompt: list[int], max_new_tokens: int, stop_ids: tuple[int, ...] | None = None) -> list[int]:
        """Greedy tokens as our Engine makes them: a stop token (default: the export's) ends it, the context
        bounds it."""
        stops = set(self.config["stop_ids"] if stop_ids is None else stop_ids)
        budget = min(max_new_tokens, self.config["context"] - len(prompt))
        logits, k, v, e = self.run("prefill", {"input_ids": np.array([prompt], dtype=np.int64)})
        out: list[int] = []
        for _ in range(budget):
            token = int(logits[0, -1].argmax())
            if token in stops:
                break
            out.append(token)
            if len(out) == budget:
                break
            logits, k, v, e = self.run("decode", {"input_ids": np.array([[token]], dtype=np.int64), "past_k": k,
                                                  "past_v": v, "prev_embedding": e})
        return out
