"""The PyTorch XLM encoder (`XLMModel`) and the base class every XLM model shares.

The forward pass reads like the paper: embeddings (words + positions + languages + token types)
→ LayerNorm → for each layer: attention, add & norm, feed-forward, add & norm, padding mask.
Parameter names, shapes, initialisation and outputs are those of transformers' XLM.
Beyond transformers' XLM: gradient checkpointing (`gradient_checkpointing_enable`), one checkpoint
per Transformer layer.

Deliberate differences from transformers 4.57.6 (each where it fails or surprises):
  - bad inputs (ids outside their table, too-long sequences, mismatched shapes) raise ValueError
    before any kernel runs; passing both input_ids and inputs_embeds is an error;
  - `cache` is a plain dict (see `XLMModel.forward`), and a bidirectional model with a cache
    attends over every cached key;
  - the adaptive-softmax LM head works on (batch, seq, dim) and has no spurious tied weight;
  - the SQuAD head ignores start / end positions outside the input, as the simple QA head does;
  - a row whose attention mask is all zeros attends every key (its output is zeroed by the mask
    anyway), where transformers spreads it uniformly: only its attention weights differ.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from xlm.config import XLMConfig
from xlm.modeling_utils import (
    check_id_range,
    check_new_positions,
    check_same_shape,
    check_sequence_length,
    check_word_embedding_table,
    resized_vocab_size,
    sinusoidal_table,
)
from xlm.outputs import BaseModelOutput
from xlm.torch_backend.layers import (
    ATTENTION_IMPLEMENTATIONS,
    XLMMultiHeadAttention,
    XLMPredLayer,
    XLMTransformerFFN,
)
from xlm.weights import StateDictMatch, match_state_dict, weight_specs

logger = logging.getLogger(__name__)


def _rows_around_mean(weight: torch.Tensor, added: int) -> torch.Tensor:
    """`added` rows drawn from N(mean of `weight`'s rows, 1e-9 × their covariance), or the mean when
    that is not positive definite (transformers' `mean_resizing`)."""
    old = weight.detach().to(torch.float32)
    mean = old.mean(dim=0)
    centered = old - mean
    covariance = 1e-9 * (centered.T @ centered / old.shape[0])
    if torch.distributions.constraints.positive_definite.check(covariance).all():
        rows = torch.distributions.MultivariateNormal(mean, covariance_matrix=covariance).sample((added,))
    else:
        rows = mean[None, :].repeat(added, 1)
    return rows.to(weight.dtype)


class XLMPreTrainedModel(nn.Module):
    """Base class of the XLM models: weight initialisation, tied embeddings, checkpoint loading and saving.

    Args:
        config: the model's `XLMConfig`.
    """

    config_class = XLMConfig
    base_model_prefix = "transformer"
    #: the weight-table architecture (transformers' class name) of a concrete model
    architecture: str | None = None
    #: transformers' flag: `gradient_checkpointing_enable` works (transformers' XLM lacks it)
    supports_gradient_checkpointing = True

    def __init__(self, config: XLMConfig) -> None:
        super().__init__()
        if not isinstance(config, XLMConfig):
            raise TypeError(f"config must be an xlm.XLMConfig, got {type(config).__name__}")
        self.config = config

    # --- initialisation -------------------------------------------------------------------------
    def _init_weights(self, module: nn.Module) -> None:
        """XLM's scheme: embeddings N(0, embed_init_std) with a zero padding row, Linear N(0, init_std)
        with zero bias, LayerNorm ones and zeros, fixed sinusoidal positions when configured."""
        config = self.config
        if isinstance(module, nn.Embedding):
            if config.embed_init_std is not None:
                nn.init.normal_(module.weight, mean=0.0, std=config.embed_init_std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.Linear):
            if config.init_std is not None:
                nn.init.normal_(module.weight, mean=0.0, std=config.init_std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        if isinstance(module, XLMModel) and config.sinusoidal_embeddings:
            module._set_sinusoidal_positions()

    def post_init(self) -> None:
        """Initialise the modules this class adds (the base model initialises itself), then tie weights."""
        for name, child in self.named_children():
            if name != self.base_model_prefix:
                child.apply(self._init_weights)
        self.tie_weights()

    def init_weights(self) -> None:
        """Re-initialise every weight with XLM's scheme and tie the output embeddings."""
        self.apply(self._init_weights)
        self.tie_weights()

    # --- embeddings -----------------------------------------------------------------------------
    @property
    def base_model(self) -> "XLMModel":
        """The encoder (`self` for XLMModel, `self.transformer` for head models)."""
        return getattr(self, self.base_model_prefix, self)

    def get_input_embeddings(self) -> nn.Embedding:
        """The word-embedding table."""
        return self.base_model.embeddings

    def set_input_embeddings(self, embeddings: nn.Embedding) -> None:
        """Replace the word-embedding table (and re-tie the output layer).

        A table of another row count sets `config.vocab_size` (and a tied LM head's vocabulary), as
        `resize_token_embeddings` does; one that would drop a special id, or resize an adaptive-softmax
        head, is a ValueError.
        """
        current = self.get_input_embeddings().weight.shape[0]
        rows = check_word_embedding_table(self.config, current, embeddings.weight.shape)
        self.base_model.embeddings = embeddings
        if self.config.tie_word_embeddings:
            for module in self.modules():
                if isinstance(module, XLMPredLayer) and not module.asm:
                    module.vocab_size = rows
        self.config.vocab_size = rows
        self.tie_weights()

    def get_output_embeddings(self) -> nn.Module | None:
        """The output projection tied to the word embeddings (None without an LM head)."""
        return None

    def set_output_embeddings(self, projection: nn.Linear) -> None:
        """Replace the output projection of the LM head."""
        raise AttributeError(f"{type(self).__name__} has no output projection")

    def tie_weights(self) -> None:
        """Share the word-embedding matrix with the output projection (when the config ties them), or
        give it a copy under `config.torchscript` (TorchScript cannot share parameters); a bias of
        another length is cut or padded with zeros to the vocabulary, as transformers does."""
        output = self.get_output_embeddings()
        if output is not None and self.config.tie_word_embeddings:
            if self.config.torchscript:
                output.weight = nn.Parameter(self.get_input_embeddings().weight.clone())
            else:
                output.weight = self.get_input_embeddings().weight
            rows = output.weight.shape[0]
            if output.bias is not None and output.bias.shape[0] != rows:
                output.bias.data = F.pad(output.bias.data, (0, rows - output.bias.shape[0]))
            output.out_features = rows

    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> nn.Embedding:
        """Give the word embeddings `new_num_tokens` rows (after adding tokens to the tokenizer), as transformers does.

        Rows are kept from the start and cut or added at the end; `pad_to_multiple_of` rounds the size
        up. Added rows are drawn around the old rows' mean and covariance (`mean_resizing`) or from
        XLM's initialisation; an untied output projection is resized the same way, a tied one follows
        the embeddings with a zero bias for new words. Updates `config.vocab_size`. Unlike
        transformers, the LM loss works afterwards, and a size that would drop one of the config's
        special ids (`pad_index` ...) or an adaptive-softmax head is a ValueError. Returns the
        embedding module; the same seed gives the same rows as transformers.
        """
        embeddings = self.get_input_embeddings()
        old_rows, dim = embeddings.weight.shape
        new_rows = resized_vocab_size(self.config, old_rows, new_num_tokens, pad_to_multiple_of)
        if new_rows is None:
            return embeddings
        if new_rows != old_rows:
            weight = embeddings.weight
            fresh = nn.Embedding(new_rows, dim, device=weight.device, dtype=weight.dtype)
            self._fill_resized(fresh, embeddings, mean_resizing)
            embeddings.weight.data = fresh.weight.data
            embeddings.num_embeddings = new_rows
            output = self.get_output_embeddings()
            if output is not None and not self.config.tie_word_embeddings:
                head = nn.Linear(dim, new_rows, bias=output.bias is not None, device=weight.device, dtype=weight.dtype)
                self._fill_resized(head, output, mean_resizing)
                head.requires_grad_(output.weight.requires_grad)
                self.set_output_embeddings(head)
            for module in self.modules():
                if isinstance(module, XLMPredLayer):
                    module.vocab_size = new_rows
        self.config.vocab_size = new_rows
        self.tie_weights()
        return embeddings

    def _fill_resized(self, new: nn.Embedding | nn.Linear, old: nn.Embedding | nn.Linear, mean_resizing: bool) -> None:
        """transformers' `_get_resized_embeddings` / `_get_resized_lm_head` fill, draw for draw: new rows
        (around the old mean, or XLM's initialisation), then the old rows copied in."""
        old_rows, new_rows = old.weight.shape[0], new.weight.shape[0]
        added = new_rows - old_rows
        with torch.no_grad():
            if added > 0 and not mean_resizing:
                self._init_weights(new)
            elif added > 0:
                new.weight[-added:] = _rows_around_mean(old.weight, added)
                if getattr(old, "bias", None) is not None:
                    bias_mean = torch.mean(old.bias, dim=0, dtype=torch.float32)
                    bias_std = torch.std(old.bias, dim=0).to(torch.float32)
                    new.bias[-added:].normal_(mean=bias_mean.item(), std=(1e-9 * bias_std).item())
            kept = min(old_rows, new_rows)
            new.weight[:kept] = old.weight[:kept]
            if getattr(old, "bias", None) is not None:
                new.bias[:kept] = old.bias[:kept]

    def set_attn_implementation(self, implementation: str) -> None:
        """'sdpa' (default: fused attention whenever no weights / head mask are asked for) or 'eager'."""
        if implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"attn_implementation must be one of {', '.join(ATTENTION_IMPLEMENTATIONS)}, got {implementation!r}"
            )
        for module in self.modules():
            if isinstance(module, XLMMultiHeadAttention):
                module.attn_implementation = implementation

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point dtype of the parameters."""
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Number of (distinct) parameters; only those that train (`only_trainable`), or without the
        embedding tables' (`exclude_embeddings`: words, positions, languages), as transformers counts."""
        parameters = self.named_parameters()
        if exclude_embeddings:
            tables = {f"{name}.weight" for name, module in self.named_modules() if isinstance(module, nn.Embedding)}
            parameters = ((name, p) for name, p in parameters if name not in tables)
        return sum(p.numel() for _, p in parameters if p.requires_grad or not only_trainable)

    # --- gradient checkpointing -----------------------------------------------------------------
    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Keep only each Transformer layer's input during a training forward pass and recompute the layer
        in the backward pass (`torch.utils.checkpoint`): less activation memory for about one more
        forward pass of compute. Losses and gradients are unchanged (dropout included: the RNG state
        is replayed). `gradient_checkpointing_kwargs` go to `torch.utils.checkpoint.checkpoint`
        (default `use_reentrant=False`). Calls with a `cache` are not checkpointed."""
        kwargs = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}
        self.base_model._gradient_checkpointing_kwargs = kwargs
        self.base_model.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        """Keep every activation again (see `gradient_checkpointing_enable`)."""
        self.base_model.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        """Whether training forward passes recompute the layers in the backward pass."""
        return bool(getattr(self.base_model, "gradient_checkpointing", False))

    def _return_dict(self, return_dict: bool | None) -> bool:
        return self.config.use_return_dict if return_dict is None else return_dict

    # --- checkpoints ----------------------------------------------------------------------------
    def load_weights(
        self, state: Mapping[str, Any], context: str = "", ignore_mismatched_sizes: bool = False
    ) -> StateDictMatch:
        """Copy a PyTorch-named checkpoint (numpy arrays or tensors) into the model through the weight table.

        A base-model or other-head checkpoint is accepted as transformers does: encoder weights must
        all fit (else `WeightMismatchError` lists what is missing, unexpected or mis-shaped); head
        weights left at their initialisation, or belonging to another head, give a warning. With
        `ignore_mismatched_sizes`, mis-shaped weights keep their initialisation (with a warning).
        """
        architecture = self._architecture()
        match = match_state_dict(weight_specs(self.config, architecture), state, self.config, architecture)
        if ignore_mismatched_sizes:
            match.drop_mismatched()
        match.raise_for_errors(context)
        match.warn_about_heads(architecture, context, stacklevel=4)
        own = self.state_dict(keep_vars=True)
        tied = {spec.torch_name: spec.tied_to for spec in weight_specs(self.config, architecture) if spec.tied_to}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            for name, value in match.tensors.items():
                target = own[name]
                if name in tied and target is own[tied[name]]:
                    continue  # shares storage with the tensor it is tied to
                source = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
                target.copy_(source)
        return match

    def _architecture(self) -> str:
        if self.architecture is None:
            raise TypeError(f"{type(self).__name__} is abstract: use XLMModel or one of the head models")
        return self.architecture

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        config: XLMConfig | None = None,
        *,
        dtype: torch.dtype | str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: Any = None,
        attn_implementation: str | None = None,
        ignore_mismatched_sizes: bool = False,
        output_loading_info: bool = False,
        torch_dtype: torch.dtype | str | None = None,
        check_finite: bool = True,
        **kwargs: Any,
    ) -> "XLMPreTrainedModel | tuple[XLMPreTrainedModel, dict[str, list]]":
        """Load a model from a directory (or Hub repository) written by us or by transformers.

        Reads config.json (unless `config` is given; `kwargs` override its fields, e.g.
        `num_labels=3`; any other keyword is a TypeError) and model.safetensors, pytorch_model.bin,
        tf_model.h5 or their shards. The model is returned in eval mode. As in transformers:
        `dtype` (or its old name `torch_dtype`) may be a dtype, its name or "auto" (the dtype the
        config records); `torchscript=True` (a config field) gives tuple outputs and an untied copy
        of the output embeddings, so that `torch.jit.trace` takes the model; `ignore_mismatched_sizes` leaves mis-shaped weights (a classifier with
        another num_labels) at their initialisation; `output_loading_info` also returns a dict of
        missing, unexpected and mismatched keys. A checkpoint holding NaN or infinite weights is a
        `NonFiniteWeightsError` naming them (such a model gives NaN outputs; `check_finite=False`
        loads it anyway, e.g. to inspect a diverged run).
        """
        from xlm import checkpoint

        architecture = cls.architecture
        if architecture is None:
            raise TypeError(f"{cls.__name__} is abstract: use XLMModel or one of the head models")
        hub_kwargs = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
        hub_kwargs = {k: v for k, v in hub_kwargs.items() if v not in (None, False)}
        directory = checkpoint.resolve_pretrained_dir(name_or_path, **hub_kwargs)
        config = checkpoint.pretrained_config(cls.__name__, directory, config, kwargs)
        dtype = _resolve_dtype(dtype if dtype is not None else torch_dtype, config)
        model = cls(config)
        if attn_implementation is not None:
            model.set_attn_implementation(attn_implementation)
        state = checkpoint.load_state_dict(directory, config, architecture, check_finite=check_finite)
        match = model.load_weights(state, os.fspath(name_or_path), ignore_mismatched_sizes)
        model.tie_weights()  # under torchscript: the copy of the loaded word embeddings
        if dtype is not None:
            model.to(dtype)
        model.eval()
        return (model, match.loading_info()) if output_loading_info else model

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        max_shard_size: int | str | None = None,
    ) -> list[str]:
        """Write config.json and the weights (model.safetensors, or pytorch_model.bin when
        `safe_serialization` is False; sharded above `max_shard_size`); returns the files written.
        The directory changes in one step, other files in it kept (`checkpoint.save_pretrained_directory`)."""
        from xlm import checkpoint

        architecture = self._architecture()
        state = {}
        for name, tensor in self.state_dict().items():
            tensor = tensor.detach().cpu()
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.float()
            state[name] = tensor.numpy()
        config = copy.deepcopy(self.config)
        config.architectures = [architecture]
        fmt = "safetensors" if safe_serialization else "bin"

        def write(directory: str) -> list[str]:
            files = checkpoint.save_state_dict(state, directory, config, architecture, format=fmt,
                                               max_shard_size=max_shard_size)
            return [config.save_pretrained(directory), *files]

        return checkpoint.save_pretrained_directory(save_directory, write, [fmt])

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        private: bool | None = None,
        token: Any = None,
        max_shard_size: int | str | None = "5GB",
        create_pr: bool = False,
        safe_serialization: bool = True,
        revision: str | None = None,
        commit_description: str | None = None,
    ) -> Any:
        """Upload what `save_pretrained` writes to the Hub model repository `repo_id` (created if needed),
        as transformers' `push_to_hub`; needs `huggingface_hub` (see `xlm.hub.push_folder_to_hub`)."""
        from xlm.hub import push_folder_to_hub

        def save(directory: str) -> None:
            self.save_pretrained(directory, safe_serialization=safe_serialization, max_shard_size=max_shard_size)

        return push_folder_to_hub(
            save, repo_id, commit_message=commit_message or "Upload model", private=private, token=token,
            create_pr=create_pr, revision=revision, commit_description=commit_description,
            what=f"the {type(self).__name__}",
        )


def _resolve_dtype(dtype: torch.dtype | str | None, config: XLMConfig) -> torch.dtype | None:
    """A floating-point torch dtype from a dtype, its name ("float16", "torch.bfloat16") or "auto"
    (the dtype config.json records, as transformers writes it; None if it records none)."""
    if isinstance(dtype, str) and dtype == "auto":
        dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(dtype, str):
        name = dtype
        dtype = getattr(torch, name.removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"dtype {name!r} is not a torch dtype (nor 'auto')")
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    return dtype


class XLMModel(XLMPreTrainedModel):
    """The XLM Transformer encoder: returns the final hidden states (batch, seq, emb_dim).

    Args:
        config: the model's `XLMConfig`.

    Example:
        >>> import torch
        >>> from xlm import XLMConfig
        >>> from xlm.torch_backend import XLMModel
        >>> model = XLMModel(XLMConfig(vocab_size=100, emb_dim=32, n_layers=2, n_heads=4)).eval()
        >>> model(torch.tensor([[0, 20, 30, 1]])).last_hidden_state.shape
        torch.Size([1, 4, 32])
    """

    architecture = "XLMModel"

    def __init__(self, config: XLMConfig) -> None:
        super().__init__(config)
        if not config.is_encoder:
            raise NotImplementedError("XLM is an encoder only: is_encoder=False is not supported")
        dim = config.emb_dim

        # === Embeddings ===
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, dim)
        self.lang_embeddings = nn.Embedding(config.n_langs, dim) if config.uses_lang_embeddings else None
        self.embeddings = nn.Embedding(config.vocab_size, dim, padding_idx=config.pad_index)
        self.layer_norm_emb = nn.LayerNorm(dim, eps=config.layer_norm_eps)

        # === Transformer layers ===
        self.attentions = nn.ModuleList(XLMMultiHeadAttention(config, i) for i in range(config.n_layers))
        self.layer_norm1 = nn.ModuleList(nn.LayerNorm(dim, eps=config.layer_norm_eps) for _ in range(config.n_layers))
        self.ffns = nn.ModuleList(XLMTransformerFFN(config) for _ in range(config.n_layers))
        self.layer_norm2 = nn.ModuleList(nn.LayerNorm(dim, eps=config.layer_norm_eps) for _ in range(config.n_layers))

        self.register_buffer("position_ids", torch.arange(config.max_position_embeddings)[None], persistent=False)
        self.gradient_checkpointing = False
        self._gradient_checkpointing_kwargs: dict[str, Any] = {"use_reentrant": False}
        self.post_init()
        if config.sinusoidal_embeddings:
            self._set_sinusoidal_positions()

    def _set_sinusoidal_positions(self) -> None:
        table = sinusoidal_table(self.config.max_position_embeddings, self.config.emb_dim)
        weight = self.position_embeddings.weight
        with torch.no_grad():
            weight.copy_(torch.from_numpy(table))
        weight.requires_grad_(False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        langs: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        cache: dict | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple:
        """Encode a batch.

        Args:
            input_ids: token ids (batch, seq); or give `inputs_embeds` (batch, seq, emb_dim).
            attention_mask: 1 for tokens, 0 for padding (batch, seq). Without it, padding is given by
                `lengths` (batch,), or counted as the tokens that are not `pad_index`.
            langs: language id of every token (batch, seq); used when the model has language embeddings.
            token_type_ids: segment ids (batch, seq), looked up in the word-embedding table.
            position_ids: positions (batch, seq); 0..seq-1 by default (restart them for TLM pairs).
            cache: a dict for incremental decoding (start with `{}`): it keeps each layer's keys and
                values and `cache["slen"]`, the positions already encoded. Pass the whole sequence
                every call; only the positions past `cache["slen"]` are computed and returned.
            head_mask: multiplies the attention probabilities, (n_heads,) or (n_layers, n_heads).
            output_attentions / output_hidden_states: also return every layer's attention
                probabilities / hidden states (the embeddings output first).
            return_dict: return a `BaseModelOutput` (default) or a tuple.
        """
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        past = cache.get("slen", 0) if cache is not None else 0
        bs, slen = self._check_shapes(
            input_ids, attention_mask, langs, token_type_ids, position_ids, lengths, inputs_embeds, past
        )

        # padding mask (bs, slen): given, from lengths, or from the pad tokens; None = no padding
        mask = attention_mask
        if mask is None:
            if lengths is None and input_ids is not None:
                lengths = (input_ids != config.pad_index).sum(dim=1)
            if lengths is not None:
                mask = self.position_ids[0, :slen] < lengths[:, None]
        if not self._check_values(input_ids, langs, token_type_ids, position_ids, lengths, attention_mask, mask):
            mask = None  # all ones: skip the masking work

        # attention mask: the lower triangle (causal; padding is removed by the mask multiply
        # after each layer) or the padded keys (bidirectional)
        is_causal = False
        if config.causal:
            if past == 0:
                attn_mask, is_causal = None, True
            else:
                attn_mask = self.position_ids[0, :slen] <= self.position_ids[0, past:slen, None]  # (qlen, klen)
        elif mask is not None:
            attn_mask = mask != 0
            # a row with no key at all would give NaN in some kernels: let it see every key instead
            # (it is zeroed by the mask multiply anyway)
            attn_mask = (attn_mask | ~attn_mask.any(dim=1, keepdim=True))[:, None, None, :]  # (bs, 1, 1, klen)
        else:
            attn_mask = None

        # positions already in the cache are not recomputed
        if past:
            input_ids = input_ids[:, past:] if input_ids is not None else None
            inputs_embeds = inputs_embeds[:, past:] if inputs_embeds is not None else None
            langs = langs[:, past:] if langs is not None else None
            token_type_ids = token_type_ids[:, past:] if token_type_ids is not None else None
            position_ids = position_ids[:, past:] if position_ids is not None else None
            mask = mask[:, past:] if mask is not None else None
        if position_ids is None:
            position_ids = self.position_ids[:, past:slen]
        mask_multiplier = mask[:, :, None].to(self.layer_norm_emb.weight.dtype) if mask is not None else None
        head_mask = self._layer_head_masks(head_mask)

        # === Embeddings ===
        if inputs_embeds is None:
            inputs_embeds = self.embeddings(input_ids)
        tensor = inputs_embeds + self.position_embeddings(position_ids)
        if langs is not None and self.lang_embeddings is not None:
            tensor = tensor + self.lang_embeddings(langs)
        if token_type_ids is not None:
            tensor = tensor + self.embeddings(token_type_ids)
        tensor = self.layer_norm_emb(tensor)
        tensor = F.dropout(tensor, config.dropout, self.training)
        if mask_multiplier is not None:
            tensor = tensor * mask_multiplier

        # === Transformer layers ===
        hidden_states = () if output_hidden_states else None
        attentions = () if output_attentions else None
        checkpointed = self.gradient_checkpointing and self.training and cache is None and torch.is_grad_enabled()
        for i in range(config.n_layers):
            if output_hidden_states:
                hidden_states += (tensor,)
            layer_args = (i, tensor, attn_mask, is_causal, cache, head_mask[i], output_attentions, mask_multiplier)
            if checkpointed:
                tensor, weights = torch.utils.checkpoint.checkpoint(
                    self._layer, *layer_args, **self._gradient_checkpointing_kwargs
                )
            else:
                tensor, weights = self._layer(*layer_args)
            if output_attentions:
                attentions += (weights,)
        if output_hidden_states:
            hidden_states += (tensor,)
        if cache is not None:
            cache["slen"] = slen

        output = BaseModelOutput(last_hidden_state=tensor, hidden_states=hidden_states, attentions=attentions)
        return output if self._return_dict(return_dict) else output.to_tuple()

    def _layer(
        self,
        i: int,
        tensor: torch.Tensor,
        attn_mask: torch.Tensor | None,
        is_causal: bool,
        cache: dict | None,
        head_mask: torch.Tensor | None,
        output_attentions: bool,
        mask_multiplier: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Transformer layer `i`: attention, add & norm, feed-forward, add & norm, padding mask; returns
        the new hidden states and the attention probabilities (None unless asked for)."""
        attn, weights = self.attentions[i](
            tensor, attn_mask, is_causal=is_causal, cache=cache, head_mask=head_mask, output_attentions=output_attentions
        )
        tensor = self.layer_norm1[i](tensor + F.dropout(attn, self.config.dropout, self.training))
        tensor = self.layer_norm2[i](tensor + self.ffns[i](tensor))
        if mask_multiplier is not None:
            tensor = tensor * mask_multiplier
        return tensor, weights

    def _layer_head_masks(self, head_mask: torch.Tensor | None) -> list:
        """Per-layer head masks shaped (1, n_heads, 1, 1), or None for each layer."""
        n_layers, n_heads = self.config.n_layers, self.config.n_heads
        if head_mask is None:
            return [None] * n_layers
        if tuple(head_mask.shape) == (n_heads,):
            head_mask = head_mask[None].expand(n_layers, -1)
        elif tuple(head_mask.shape) != (n_layers, n_heads):
            raise ValueError(
                f"head_mask has shape {list(head_mask.shape)}; expected [{n_heads}] (n_heads) or "
                f"[{n_layers}, {n_heads}] (n_layers, n_heads)"
            )
        head_mask = head_mask.to(self.layer_norm_emb.weight.dtype)
        return [head_mask[i][None, :, None, None] for i in range(n_layers)]

    def _check_shapes(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        langs: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        lengths: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        past: int,
    ) -> tuple[int, int]:
        """Raise ValueError on inputs whose shapes disagree (no data is read); returns (batch, seq)."""
        config = self.config
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if input_ids is not None:
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids must have shape (batch, sequence), got {list(input_ids.shape)}")
            reference_name, shape = "input_ids", tuple(input_ids.shape)
        else:
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.emb_dim:
                raise ValueError(
                    f"inputs_embeds must have shape (batch, sequence, {config.emb_dim}), "
                    f"got {list(inputs_embeds.shape)}"
                )
            reference_name, shape = "inputs_embeds[..., 0]", tuple(inputs_embeds.shape[:2])
        check_same_shape(
            reference_name,
            shape,
            attention_mask=None if attention_mask is None else attention_mask.shape,
            langs=None if langs is None else langs.shape,
            token_type_ids=None if token_type_ids is None else token_type_ids.shape,
            position_ids=None if position_ids is None else position_ids.shape,
        )
        if lengths is not None:
            check_same_shape(f"the batch of {reference_name}", shape[:1], lengths=lengths.shape)
        check_new_positions(past, shape[1])
        if position_ids is None:
            check_sequence_length(shape[1], config.max_position_embeddings)
        return shape

    def _check_values(
        self,
        input_ids: torch.Tensor | None,
        langs: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        lengths: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> bool:
        """Raise ValueError on ids outside their tables; return whether `mask` has any padding.

        Every range (and the padding test) is read in one device sync. Under torch.compile or
        torch.jit.trace nothing is checked (a graph cannot branch on values) and the mask is kept.
        """
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return mask is not None
        config = self.config
        checks = [
            ("input_ids", input_ids, config.vocab_size, "vocab_size"),
            ("token_type_ids", token_type_ids, config.vocab_size, "vocab_size"),
            ("langs", langs, config.n_langs, "n_langs"),
            ("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings"),
        ]
        checks = [c for c in checks if c[1] is not None and c[1].numel() > 0]
        if lengths is not None and lengths.numel() > 0 and attention_mask is None:
            checks.append(("lengths", lengths, None, None))
        stats = [m.to(torch.int64) for c in checks for m in torch.aminmax(c[1])]
        if mask is not None:
            stats.append((mask != 1).any().to(torch.int64))
        if not stats:
            return False
        values = torch.stack(stats).tolist()
        for i, (name, _, limit, limit_name) in enumerate(checks):
            low, high = values[2 * i], values[2 * i + 1]
            if name == "lengths":
                seq_len = mask.shape[1]
                if low < 0 or high > seq_len:
                    bad = low if low < 0 else high
                    raise ValueError(f"lengths contains {bad}, outside [0, {seq_len}] (the sequence length)")
            else:
                check_id_range(name, low, high, limit, limit_name)
        return mask is not None and bool(values[-1])
