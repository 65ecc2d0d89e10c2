"""The Hugging Face face of a nanochat-next model: copied, with portable.py, into every ``--to hf`` export of
a modern-style model as ``modeling_nanochat_next.py``, and loaded by

    transformers.AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True)

It needs torch and transformers only (not the nanochat_next package). The math is ``portable.PortableGPT``;
this file adapts it to transformers' config/model classes. It keeps no cache between generation steps
(each step recomputes the sequence, ``use_cache`` is off in the export's generation_config.json): exact,
and fast enough for models of this size; the ONNX export is the fast path with a KV cache.
"""

from __future__ import annotations

import torch
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .portable import PortableGPT


class NanochatNextConfig(PretrainedConfig):
    model_type = "nanochat_next"

    def __init__(self, style: str = "modern", model_config: dict | None = None, **kwargs):
        self.style = style
        self.model_config = dict(model_config or {})
        kwargs.setdefault("vocab_size", self.model_config.get("vocab_size"))
        kwargs.setdefault("max_position_embeddings", self.model_config.get("sequence_len"))
        kwargs.setdefault("tie_word_embeddings", bool(self.model_config.get("tie_embeddings", False)))
        super().__init__(**kwargs)


class NanochatNextForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = NanochatNextConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules: list[str] = []

    def __init__(self, config: NanochatNextConfig):
        super().__init__(config)
        self.model = PortableGPT(config.model_config, config.style)
        self.tables_ready = False  # built on the meta device by from_pretrained: rotary tables made on first use
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Every weight comes from model.safetensors; nothing to initialise."""

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.model.transformer.wte

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.model.lm_head

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                labels: torch.LongTensor | None = None, **kwargs) -> CausalLMOutputWithPast:
        """Logits of every position (left padding is not supported: rows of one batch share positions)."""
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("nanochat-next models take unpadded batches (attention_mask all ones)")
        if not self.tables_ready:
            self.model.make_rotary_tables(input_ids.device)
            self.tables_ready = True
        past_k, past_v, prev = self.model.empty_cache(input_ids.size(0), input_ids.device)
        logits = self.model(input_ids, past_k, past_v, prev)[0]
        loss = None
        if labels is not None:  # next-token loss, as transformers' causal LMs: labels are the inputs, shifted here
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(),
                                                     ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, **kwargs) -> dict:
        return {"input_ids": input_ids}
