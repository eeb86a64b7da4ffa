"""Left-to-right generation for causal XLM language models (greedy, top-k / top-p sampling, beam search,
KV cache): the twin of `xlm/torch_backend/generation.py`."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from xlm.generation_utils import BeamSearch, check_generate_arguments, merge_groups, prompt_lengths
from xlm.tf_backend.backend import is_integer_dtype, tf_only
from xlm.tf_backend.modeling import TFXLMCache

ops = keras.ops


def filter_logits(logits: Any, top_k: int = 0, top_p: float = 1.0) -> Any:
    """Set to -inf every score outside the `top_k` best and outside the smallest set whose
    probability reaches `top_p` (nucleus); the best token always stays. logits: (batch, vocab)."""
    logits = ops.convert_to_tensor(logits)
    if top_k and top_k < logits.shape[-1]:
        kth_best = ops.top_k(logits, top_k)[0][..., -1:]
        logits = ops.where(logits < kth_best, ops.cast(-np.inf, logits.dtype), logits)
    if top_p < 1.0:
        order = _descending_order(logits)
        sorted_logits = ops.take_along_axis(logits, order, axis=-1)
        probs = ops.softmax(sorted_logits, axis=-1)
        # drop a token when the tokens before it already reach top_p
        drop_sorted = (ops.cumsum(probs, axis=-1) - probs) >= top_p
        drop = ops.take_along_axis(drop_sorted, ops.argsort(order, axis=-1), axis=-1)
        logits = ops.where(drop, ops.cast(-np.inf, logits.dtype), logits)
    return logits


def _descending_order(logits: Any) -> Any:
    """Each row's ids by descending score, equal scores in id order on every backend."""
    if tf_only is not None:
        return tf_only.stable_argsort_descending(logits)  # Keras' argsort is not stable on TensorFlow
    return ops.argsort(-logits, axis=-1)  # stable on JAX and torch


class TFXLMGenerationMixin:
    """`generate()` for TFXLMWithLMHeadModel built on a causal (`config.causal`) encoder."""

    def generate(
        self,
        input_ids: Any,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        langs: Any = None,
        eos_token_id: int | None = None,
        use_cache: bool = True,
        seed: int | keras.random.SeedGenerator | None = None,
        num_beams: int = 1,
        num_return_sequences: int = 1,
        length_penalty: float = 1.0,
        early_stopping: bool = False,
        attention_mask: Any = None,
        token_type_ids: Any = None,
    ) -> Any:
        """Extend each prompt by up to `max_new_tokens` tokens; returns (batch × num_return_sequences,
        prompt + new) ids, each prompt's sequences next to each other.

        The same search as the PyTorch twin's `generate` (see there): each new token is predicted from the
        last position, as the original XLM's CLM does, not at an appended mask token as transformers' does.

        Args:
            input_ids: prompts (batch, prompt_len); with `attention_mask`, right-padded prompts of several
                lengths (a tokenizer's batch: `generate(**tokenizer(texts, padding=True, ...))`). Each is
                continued from its own last token, and its row of the result holds its tokens, the new ones
                and then padding (`pad_index`).
            do_sample: sample from the (temperature-scaled, top-k / top-p filtered) distribution
                instead of taking the most likely token.
            langs: one language id for every token, or the prompt's language ids (batch, prompt_len),
                each row continuing in the language of its last prompt token.
            eos_token_id: rows that produce it are finished and padded with `pad_index` afterwards;
                generation stops when every row is finished.
            use_cache: reuse each layer's keys and values (the same result as recomputing).
            seed: an int or a `keras.random.SeedGenerator` for sampling (the same seed, the same samples).
            num_beams: beam search over this many beams (greedy search, not sampling).
            num_return_sequences: the best sequences returned per prompt (at most `num_beams`), or
                with `do_sample` that many samples per prompt.
            length_penalty, early_stopping: beam-search scoring and stopping, as the PyTorch twin's.
            attention_mask: 1 on the prompts' tokens, 0 on the padding after them (batch, prompt_len).
            token_type_ids: the prompts' token types (batch, prompt_len), each row continuing with its last.
        """
        config = self.config
        ids = ops.convert_to_tensor(input_ids)
        if not is_integer_dtype(ids):
            raise ValueError(
                f"input_ids must hold integer token ids, got dtype {keras.backend.standardize_dtype(ids.dtype)}"
            )
        requested = max_new_tokens  # a shorter prompt has more room left
        max_new_tokens = check_generate_arguments(
            config, tuple(ids.shape), max_new_tokens, do_sample, temperature, top_p, num_beams,
            num_return_sequences, early_stopping,
        )
        if isinstance(langs, int):
            langs = ops.full(ops.shape(ids), langs, dtype=ids.dtype)
        elif langs is not None:
            langs = ops.cast(langs, ids.dtype)
        if token_type_ids is not None:
            token_type_ids = ops.cast(token_type_ids, ids.dtype)
        if do_sample and not isinstance(seed, keras.random.SeedGenerator):
            seed = keras.random.SeedGenerator(seed)  # one stream for every step (and every prompt group)
        if attention_mask is not None:
            lengths = prompt_lengths(np.asarray(ops.convert_to_numpy(attention_mask)), tuple(ids.shape))
            if (lengths < ids.shape[1]).any():
                groups = [np.flatnonzero(lengths == n) for n in np.unique(lengths)]
                options = dict(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
                               eos_token_id=eos_token_id, use_cache=use_cache, seed=seed,
                               num_beams=num_beams, num_return_sequences=num_return_sequences,
                               length_penalty=length_penalty, early_stopping=early_stopping)
                outputs = []
                for rows in groups:
                    n = int(lengths[rows[0]])
                    part = {name: ops.take(value, rows, axis=0)[:, :n] for name, value in
                            (("langs", langs), ("token_type_ids", token_type_ids)) if value is not None}
                    generated = self.generate(ops.take(ids, rows, axis=0)[:, :n], requested, **part, **options)
                    outputs.append(ops.convert_to_numpy(generated))
                merged = merge_groups(outputs, groups, num_return_sequences, config.pad_index)
                return ops.convert_to_tensor(merged, ids.dtype)
        if num_beams > 1 and max_new_tokens > 0:
            return self._beam_search(ids, langs, token_type_ids, max_new_tokens, num_beams, num_return_sequences,
                                     length_penalty, early_stopping, eos_token_id, use_cache)
        if num_return_sequences > 1:  # samples (or, with no room left, the prompts): each prompt repeated
            ids = ops.repeat(ids, num_return_sequences, axis=0)
            langs = ops.repeat(langs, num_return_sequences, axis=0) if langs is not None else None
            if token_type_ids is not None:
                token_type_ids = ops.repeat(token_type_ids, num_return_sequences, axis=0)
        next_langs = langs[:, -1:] if langs is not None else None
        next_types = token_type_ids[:, -1:] if token_type_ids is not None else None
        cache = TFXLMCache() if use_cache else None
        finished = ops.zeros(ids.shape[0], dtype="bool")
        for _ in range(max_new_tokens):
            attention_mask = ops.ones_like(ids)
            logits = self(ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
                          cache=cache).logits[:, -1, :]
            if do_sample:
                logits = filter_logits(ops.cast(logits, "float32") / temperature, top_k, top_p)
                next_ids = keras.random.categorical(logits, 1, seed=seed, dtype="int32")[:, 0]
            else:
                next_ids = ops.argmax(logits, axis=-1)
            next_ids = ops.cast(next_ids, ids.dtype)
            if eos_token_id is not None:
                next_ids = ops.where(finished, ops.cast(config.pad_index, ids.dtype), next_ids)
                finished = ops.logical_or(finished, ops.equal(next_ids, eos_token_id))
            ids = ops.concatenate([ids, next_ids[:, None]], axis=1)
            if langs is not None:
                langs = ops.concatenate([langs, next_langs], axis=1)
            if token_type_ids is not None:
                token_type_ids = ops.concatenate([token_type_ids, next_types], axis=1)
            if eos_token_id is not None and bool(ops.convert_to_numpy(ops.all(finished))):
                break
        return ids

    def _beam_search(
        self,
        ids: Any,
        langs: Any,
        token_type_ids: Any,
        max_new_tokens: int,
        num_beams: int,
        num_return_sequences: int,
        length_penalty: float,
        early_stopping: bool,
        eos_token_id: int | None,
        use_cache: bool,
    ) -> Any:
        """`generate(num_beams > 1)`: each step keeps the `num_beams` best continuations of each prompt
        (`xlm.generation_utils.BeamSearch`)."""
        search = BeamSearch(ids.shape[0], num_beams, num_return_sequences, length_penalty, early_stopping,
                            eos_token_id, self.config.pad_index)
        prompts = ops.convert_to_numpy(ids)
        ids = ops.repeat(ids, num_beams, axis=0)  # (batch × beams, len), a prompt's beams together
        langs = ops.repeat(langs, num_beams, axis=0) if langs is not None else None
        next_langs = langs[:, -1:] if langs is not None else None
        if token_type_ids is not None:
            token_type_ids = ops.repeat(token_type_ids, num_beams, axis=0)
        next_types = token_type_ids[:, -1:] if token_type_ids is not None else None
        cache = TFXLMCache() if use_cache else None
        for step in range(max_new_tokens):
            logits = self(ids, attention_mask=ops.ones_like(ids), langs=langs, token_type_ids=token_type_ids,
                          cache=cache).logits[:, -1, :]
            log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
            vocab = log_probs.shape[-1]
            scores = ops.convert_to_tensor(search.scores.reshape(-1, 1), "float32")
            candidates = ops.reshape(scores + log_probs, (search.batch, num_beams * vocab))
            values, indices = ops.top_k(candidates, search.candidates(vocab))
            source = search.step(step, ops.convert_to_numpy(values).tolist(), ops.convert_to_numpy(indices).tolist(),
                                 vocab)
            source = ops.convert_to_tensor(np.asarray(source), "int32")
            new_tokens = ops.convert_to_tensor(search.tokens[:, -1:], ids.dtype)
            ids = ops.concatenate([ops.take(ids, source, axis=0), new_tokens], axis=1)
            if langs is not None:  # a prompt's beams share its language: next_langs needs no reordering
                langs = ops.concatenate([ops.take(langs, source, axis=0), next_langs], axis=1)
            if token_type_ids is not None:  # and its last token type
                token_type_ids = ops.concatenate([ops.take(token_type_ids, source, axis=0), next_types], axis=1)
            if cache is not None:
                for key, value in cache.items():
                    if key != "slen":
                        cache[key] = tuple(ops.take(t, source, axis=0) for t in value)
            if search.all_done:
                break
        return ops.convert_to_tensor(search.result(prompts), ids.dtype)
