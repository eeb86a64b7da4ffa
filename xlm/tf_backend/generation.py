"""Left-to-right generation for XLM language models (greedy, top-k / top-p sampling, beam search, logits
processors, KV cache for causal models), with transformers' arguments and `GenerationConfig`: the twin of
`xlm/torch_backend/generation.py`."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from xlm.generation_config import GenerationConfig
from xlm.generation_utils import (
    BeamSearch,
    GenerationPlan,
    generation_plan,
    merge_beam_indices,
    merge_generation_config,
    merge_group_steps,
    merge_groups,
    process_logits,
    prompt_lengths,
    start_ids,
)
from xlm.outputs import GenerateBeamDecoderOnlyOutput, GenerateDecoderOnlyOutput
from xlm.tf_backend.backend import is_integer_dtype, tf_only
from xlm.tf_backend.modeling import TFXLMCache

ops = keras.ops


def filter_logits(logits: Any, top_k: int = 0, top_p: float = 1.0, min_tokens_to_keep: int = 1) -> Any:
    """Set to -inf every score outside the `top_k` best and outside the smallest set whose probability reaches
    `top_p` (nucleus), keeping at least `min_tokens_to_keep`: transformers' TopK and TopP warpers.
    logits: (batch, vocab)."""
    logits = ops.convert_to_tensor(logits)
    vocab = logits.shape[-1]
    if top_k:
        top_k = min(max(top_k, min_tokens_to_keep), vocab)
        kth_best = ops.top_k(logits, top_k)[0][..., -1:]
        logits = ops.where(logits < kth_best, ops.cast(-np.inf, logits.dtype), logits)
    if top_p < 1.0:
        order = _ascending_order(logits)
        sorted_logits = ops.take_along_axis(logits, order, axis=-1)
        # drop a token when the tokens below it hold no more than 1 - top_p
        drop_sorted = ops.cumsum(ops.softmax(sorted_logits, axis=-1), axis=-1) <= (1 - top_p)
        drop_sorted = ops.logical_and(drop_sorted, ops.arange(vocab) < vocab - min_tokens_to_keep)
        drop = ops.take_along_axis(drop_sorted, ops.argsort(order, axis=-1), axis=-1)
        logits = ops.where(drop, ops.cast(-np.inf, logits.dtype), logits)
    return logits


def _ascending_order(logits: Any) -> Any:
    """Each row's ids by ascending score, equal scores in id order on every backend."""
    if tf_only is not None:
        return tf_only.stable_argsort_descending(-logits)  # Keras' argsort is not stable on TensorFlow
    return ops.argsort(logits, axis=-1)  # stable on JAX and torch


class TFXLMGenerationMixin:
    """`generate()` and `generation_config` for TFXLMWithLMHeadModel."""

    @property
    def generation_config(self) -> GenerationConfig:
        """The model's default generation settings, built from its config on first use (transformers'
        `GenerationConfig.from_model_config`); assign a `GenerationConfig` to change them."""
        settings = self.__dict__.get("_generation_config")
        if settings is None:
            settings = self.__dict__["_generation_config"] = GenerationConfig.from_model_config(self.config)
        return settings

    @generation_config.setter
    def generation_config(self, value: GenerationConfig) -> None:
        if not isinstance(value, GenerationConfig):
            raise ValueError(f"generation_config must be an xlm.GenerationConfig, got {type(value).__name__}")
        self.__dict__["_generation_config"] = value

    def generate(
        self,
        input_ids: Any = None,
        generation_config: GenerationConfig | None = None,
        *,
        inputs: Any = None,
        max_new_tokens: int | None = None,
        max_length: int | None = None,
        min_new_tokens: int | None = None,
        min_length: int | None = None,
        do_sample: bool | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        num_beams: int | None = None,
        num_return_sequences: int | None = None,
        length_penalty: float | None = None,
        early_stopping: bool | str | None = None,
        repetition_penalty: float | None = None,
        no_repeat_ngram_size: int | None = None,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
        use_cache: bool | None = None,
        output_scores: bool | None = None,
        output_logits: bool | None = None,
        return_dict_in_generate: bool | None = None,
        langs: Any = None,
        seed: int | keras.random.SeedGenerator | None = None,
        attention_mask: Any = None,
        token_type_ids: Any = None,
    ) -> Any:
        """Extend each prompt by new tokens; returns (batch × num_return_sequences, prompt + new) ids, each
        prompt's sequences next to each other, or with `return_dict_in_generate` a `GenerateDecoderOnlyOutput`
        (`GenerateBeamDecoderOnlyOutput` for beam search).

        The same settings and search as the PyTorch twin's `generate` (see there): causal models predict from the
        last position, as the original XLM's CLM does; masked-LM models (`config.causal=False`) append
        `config.mask_token_id` and predict there, as transformers' XLM does, with its tokens. Greedy and beam
        search give the PyTorch twin's tokens; sampling draws from Keras' generator (`seed=`, an int or a
        `keras.random.SeedGenerator`) where PyTorch takes `generator=`.

        Args:
            input_ids: prompts (batch, prompt_len), or None to start from `bos_token_id` (also as `inputs=`).
                With `attention_mask`, right-padded prompts of several lengths (a tokenizer's batch:
                `generate(**tokenizer(texts, padding=True, ...))`): each is continued from its own last token, and
                its row of the result holds its tokens, the new ones and then `pad_token_id`.
            generation_config: a `GenerationConfig` for this call; its default values fall back to the model's.
            max_new_tokens, max_length, min_new_tokens, min_length, do_sample, temperature, top_k, top_p,
            num_beams, num_return_sequences, length_penalty, early_stopping, repetition_penalty,
            no_repeat_ngram_size, eos_token_id, pad_token_id, bos_token_id, use_cache, output_scores,
            output_logits, return_dict_in_generate: as the PyTorch twin's (transformers' meanings).
            langs: one language id for every token, or the prompt's language ids (batch, prompt_len),
                each row continuing in the language of its last prompt token.
            seed: an int or a `keras.random.SeedGenerator` for sampling (the same seed, the same samples).
            attention_mask: 1 on the prompts' tokens, 0 on the padding after them (batch, prompt_len).
            token_type_ids: the prompts' token types (batch, prompt_len), each row continuing with its last.
        """
        config = self.config
        settings = merge_generation_config(
            self.generation_config, generation_config, max_new_tokens=max_new_tokens, max_length=max_length,
            min_new_tokens=min_new_tokens, min_length=min_length, do_sample=do_sample, temperature=temperature,
            top_k=top_k, top_p=top_p, num_beams=num_beams, num_return_sequences=num_return_sequences,
            length_penalty=length_penalty, early_stopping=early_stopping, repetition_penalty=repetition_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
            bos_token_id=bos_token_id, use_cache=use_cache, output_scores=output_scores,
            output_logits=output_logits, return_dict_in_generate=return_dict_in_generate,
        )
        if inputs is not None and input_ids is not None:
            raise ValueError("give the prompts as input_ids or as inputs, not both")
        ids = input_ids if input_ids is not None else inputs
        if ids is None:
            ids = start_ids(settings, config)
        ids = ops.convert_to_tensor(ids)
        if not is_integer_dtype(ids):
            raise ValueError(
                f"input_ids must hold integer token ids, got dtype {keras.backend.standardize_dtype(ids.dtype)}"
            )
        plan = generation_plan(config, settings, tuple(ids.shape), max_length_given=max_length is not None)
        if isinstance(langs, int):
            langs = ops.full(ops.shape(ids), langs, dtype=ids.dtype)
        elif langs is None and not config.causal and config.uses_lang_embeddings:
            langs = ops.full(ops.shape(ids), config.lang_id, dtype=ids.dtype)  # transformers' XLM: config.lang_id
        elif langs is not None:
            langs = ops.cast(langs, ids.dtype)
        if token_type_ids is not None:
            token_type_ids = ops.cast(token_type_ids, ids.dtype)
        if plan.do_sample and not isinstance(seed, keras.random.SeedGenerator):
            seed = keras.random.SeedGenerator(seed)  # one stream for every step (and every prompt group)

        if attention_mask is not None:
            lengths = prompt_lengths(np.asarray(ops.convert_to_numpy(attention_mask)), tuple(ids.shape))
            if (lengths < ids.shape[1]).any():
                return self._generate_groups(ids, lengths, langs, token_type_ids, plan, seed)
        return self._generate(ids, langs, token_type_ids, plan.for_prompt(config, ids.shape[1]), seed)

    def _generate_groups(
        self,
        ids: Any,
        lengths: np.ndarray,
        langs: Any,
        token_type_ids: Any,
        plan: GenerationPlan,
        seed: keras.random.SeedGenerator | None,
    ) -> Any:
        """`generate` on right-padded prompts: each group of equal length on its own, merged back in order. Every
        prompt may get the same number of new tokens (`max_length` counts the padded width, as in a left-padded
        batch); a shorter prompt has more room left in the position table."""
        groups = [np.flatnonzero(lengths == n) for n in np.unique(lengths)]
        results = []
        for rows in groups:
            n = int(lengths[rows[0]])
            part = [ops.take(value, rows, axis=0)[:, :n] if value is not None else None
                    for value in (ids, langs, token_type_ids)]
            results.append(self._generate(*part, plan.for_prompt(self.config, n), seed))
        copies = plan.num_return_sequences
        outputs = [r.sequences if plan.return_dict_in_generate else r for r in results]
        merged = merge_groups([ops.convert_to_numpy(o) for o in outputs], groups, copies, plan.pad_token_id)
        sequences = ops.convert_to_tensor(merged, ids.dtype)
        if not plan.return_dict_in_generate:
            return sequences
        rows_per_step = plan.num_beams if plan.num_beams > 1 else copies
        fields = {"sequences": sequences}
        for name in ("scores", "logits"):
            if getattr(results[0], name) is not None:
                steps = [[ops.convert_to_numpy(t) for t in getattr(r, name)] for r in results]
                fields[name] = tuple(ops.convert_to_tensor(a) for a in merge_group_steps(steps, groups, rows_per_step))
        if plan.num_beams == 1:
            return GenerateDecoderOnlyOutput(**fields)
        if results[0].sequences_scores is not None:
            scores = merge_groups([ops.convert_to_numpy(r.sequences_scores)[:, None] for r in results], groups,
                                  copies, 0)
            fields["sequences_scores"] = ops.convert_to_tensor(scores[:, 0])
        indices = merge_beam_indices([ops.convert_to_numpy(r.beam_indices) for r in results], groups, copies,
                                     plan.num_beams)
        return GenerateBeamDecoderOnlyOutput(beam_indices=ops.convert_to_tensor(indices), **fields)

    def _next_logits(self, ids: Any, langs: Any, token_type_ids: Any, cache: TFXLMCache | None) -> Any:
        """The float32 scores (rows, vocab) of the token after each row of `ids`."""
        if self.config.causal:
            logits = self(ids, attention_mask=ops.ones_like(ids), langs=langs, token_type_ids=token_type_ids,
                          cache=cache).logits[:, -1, :]
            return ops.cast(logits, "float32")
        # masked LM: predict at an appended mask token; no attention mask, as in transformers (the model counts
        # the tokens that are not pad_index)
        mask = ops.full((ids.shape[0], 1), self.config.mask_token_id, dtype=ids.dtype)
        if langs is not None:
            langs = ops.concatenate([langs, langs[:, -1:]], axis=1)
        if token_type_ids is not None:
            token_type_ids = ops.concatenate([token_type_ids, token_type_ids[:, -1:]], axis=1)
        logits = self(ops.concatenate([ids, mask], axis=1), langs=langs, token_type_ids=token_type_ids).logits
        return ops.cast(logits[:, -1, :], "float32")

    def _processed(self, plan: GenerationPlan, ids: Any, scores: Any, step: int) -> Any:
        """`scores` through the logits processors that look at the ids (`xlm.generation_utils.process_logits`)."""
        if not plan.processes_logits:
            return scores
        return ops.convert_to_tensor(
            process_logits(plan, ops.convert_to_numpy(ids), ops.convert_to_numpy(scores), step), "float32")

    def _generate(
        self,
        ids: Any,
        langs: Any,
        token_type_ids: Any,
        plan: GenerationPlan,
        seed: keras.random.SeedGenerator | None,
    ) -> Any:
        """Greedy search or sampling on prompts of one length (beam search: `_beam_search`)."""
        if plan.num_beams > 1 and plan.max_new_tokens > 0:
            return self._beam_search(ids, langs, token_type_ids, plan)
        copies = plan.num_return_sequences
        if copies > 1:  # samples (or, with no room left, the prompts): each prompt repeated
            ids = ops.repeat(ids, copies, axis=0)
            langs = ops.repeat(langs, copies, axis=0) if langs is not None else None
            if token_type_ids is not None:
                token_type_ids = ops.repeat(token_type_ids, copies, axis=0)
        next_langs = langs[:, -1:] if langs is not None else None
        next_types = token_type_ids[:, -1:] if token_type_ids is not None else None
        cache = TFXLMCache() if plan.use_cache and self.config.causal else None
        eos = ops.convert_to_tensor(np.asarray(plan.eos), ids.dtype) if plan.eos else None
        finished = ops.zeros(ids.shape[0], dtype="bool")
        scores_out, logits_out = [], []
        for step in range(plan.max_new_tokens):
            logits = self._next_logits(ids, langs, token_type_ids, cache)
            scores = self._processed(plan, ids, logits, step)
            if plan.do_sample:
                if plan.temperature != 1.0:
                    scores = scores / plan.temperature
                scores = filter_logits(scores, plan.top_k, plan.top_p)
                next_ids = keras.random.categorical(scores, 1, seed=seed, dtype="int32")[:, 0]
            else:
                next_ids = ops.argmax(scores, axis=-1)
            scores_out.append(scores)
            logits_out.append(logits)
            next_ids = ops.cast(next_ids, ids.dtype)
            if eos is not None:
                next_ids = ops.where(finished, ops.cast(plan.pad_token_id, ids.dtype), next_ids)
                is_eos = ops.any(ops.equal(next_ids[:, None], eos[None, :]), axis=1)
                finished = ops.logical_or(finished, is_eos)
            ids = ops.concatenate([ids, next_ids[:, None]], axis=1)
            if langs is not None:
                langs = ops.concatenate([langs, next_langs], axis=1)
            if token_type_ids is not None:
                token_type_ids = ops.concatenate([token_type_ids, next_types], axis=1)
            if eos is not None and bool(ops.convert_to_numpy(ops.all(finished))):
                break
        if not plan.return_dict_in_generate:
            return ids
        return GenerateDecoderOnlyOutput(
            sequences=ids,
            scores=tuple(scores_out) if plan.output_scores else None,
            logits=tuple(logits_out) if plan.output_logits else None,
        )

    def _beam_search(self, ids: Any, langs: Any, token_type_ids: Any, plan: GenerationPlan) -> Any:
        """`generate(num_beams > 1)`: transformers' beam search (`xlm.generation_utils.BeamSearch`)."""
        num_beams, vocab = plan.num_beams, self.config.vocab_size
        search = BeamSearch(ids.shape[0], plan, vocab)
        prompts = ops.convert_to_numpy(ids)
        ids = ops.repeat(ids, num_beams, axis=0)  # (batch × beams, len), a prompt's beams together
        langs = ops.repeat(langs, num_beams, axis=0) if langs is not None else None
        next_langs = langs[:, -1:] if langs is not None else None
        if token_type_ids is not None:
            token_type_ids = ops.repeat(token_type_ids, num_beams, axis=0)
        next_types = token_type_ids[:, -1:] if token_type_ids is not None else None
        cache = TFXLMCache() if plan.use_cache and self.config.causal else None
        scores_out, logits_out = [], []
        for step in range(plan.max_new_tokens):
            logits = self._next_logits(ids, langs, token_type_ids, cache)
            log_probs = self._processed(plan, ids, ops.log_softmax(logits, axis=-1), step)
            scores_out.append(log_probs)
            logits_out.append(logits)
            running = ops.convert_to_tensor(search.running_scores, "float32")
            candidates = ops.reshape(ops.reshape(log_probs, (search.batch, num_beams, vocab)) + running[:, :, None],
                                     (search.batch, num_beams * vocab))
            values, indices = ops.top_k(candidates, search.candidates)
            source, tokens = search.step(step, ops.convert_to_numpy(values), ops.convert_to_numpy(indices), vocab)
            source = ops.convert_to_tensor(source.astype(np.int32))
            ids = ops.concatenate([ops.take(ids, source, axis=0), ops.convert_to_tensor(tokens[:, None], ids.dtype)],
                                  axis=1)
            if langs is not None:  # a prompt's beams share its language: next_langs needs no reordering
                langs = ops.concatenate([ops.take(langs, source, axis=0), next_langs], axis=1)
            if token_type_ids is not None:  # and its last token type
                token_type_ids = ops.concatenate([ops.take(token_type_ids, source, axis=0), next_types], axis=1)
            if cache is not None:
                for key, value in cache.items():
                    if key != "slen":
                        cache[key] = tuple(ops.take(t, source, axis=0) for t in value)
            if not search.running:
                break
        sequences, sequences_scores, beam_indices = search.result(prompts)
        sequences = ops.convert_to_tensor(sequences, ids.dtype)
        if not plan.return_dict_in_generate:
            return sequences
        return GenerateBeamDecoderOnlyOutput(
            sequences=sequences,
            sequences_scores=ops.convert_to_tensor(sequences_scores) if plan.output_scores else None,
            scores=tuple(scores_out) if plan.output_scores else None,
            logits=tuple(logits_out) if plan.output_logits else None,
            beam_indices=ops.convert_to_tensor(beam_indices),
        )
