"""Left-to-right generation for XLM language models (greedy, top-k / top-p sampling, beam search, logits
processors, KV cache for causal models), with transformers' arguments and `GenerationConfig`."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

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


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0, min_tokens_to_keep: int = 1
                  ) -> torch.Tensor:
    """Set to -inf every score outside the `top_k` best and outside the smallest set whose probability reaches
    `top_p` (nucleus), keeping at least `min_tokens_to_keep`: transformers' TopK and TopP warpers.
    logits: (batch, vocab)."""
    if top_k:
        top_k = min(max(top_k, min_tokens_to_keep), logits.shape[-1])
        kth_best = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=False)
        # drop a token when the tokens below it hold no more than 1 - top_p
        drop_sorted = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
        drop_sorted[..., -min_tokens_to_keep:] = False
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    return logits


class XLMGenerationMixin:
    """`generate()` and `generation_config` for XLMWithLMHeadModel."""

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

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        *,
        inputs: torch.Tensor | None = None,
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
        langs: torch.Tensor | int | None = None,
        generator: torch.Generator | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor | GenerateDecoderOnlyOutput | GenerateBeamDecoderOnlyOutput:
        """Extend each prompt by new tokens; returns (batch × num_return_sequences, prompt + new) ids, each
        prompt's sequences next to each other, or with `return_dict_in_generate` a `GenerateDecoderOnlyOutput`
        (`GenerateBeamDecoderOnlyOutput` for beam search).

        Settings come from `generation_config` (default: `model.generation_config`, built from the model
        config), and the arguments given here override them, with transformers' names, defaults and order of
        logits processors (repetition penalty, no-repeat n-grams, minimum length; then temperature, top-k and
        top-p when sampling).

        Causal models (`config.causal`) predict each new token from the last position, as the original XLM's
        CLM does, with a KV cache, and add language embeddings only when `langs` is given. transformers' XLM
        appends `mask_token_id` and predicts there instead, so for causal models its tokens differ. Masked-LM
        models (`config.causal=False`) generate as transformers' XLM does: each step appends
        `config.mask_token_id` and predicts at that position, every position in `config.lang_id` when the model
        has language embeddings (or in `langs` when given); the whole sequence is encoded again each step (a
        bidirectional model has no cache). Without padding and `token_type_ids`, they give transformers' tokens.

        Args:
            input_ids: prompts (batch, prompt_len), or None to start from `bos_token_id` (also as `inputs=`).
                With `attention_mask`, right-padded prompts of several lengths (a tokenizer's batch:
                `generate(**tokenizer(texts, padding=True, ...))`): each is continued from its own last token, and
                its row of the result holds its tokens, the new ones and then `pad_token_id`.
            generation_config: a `GenerationConfig` for this call; its default values fall back to the model's.
            max_new_tokens: the most new tokens (20 by default); it takes precedence over `max_length`, the
                most tokens in all, prompt included. Both are cut to the room left in the position table.
            min_new_tokens / min_length: no eos id before this many new tokens / tokens in all.
            do_sample: sample from the (temperature-scaled, top-k / top-p filtered) distribution instead of
                taking the most likely token (`top_k` is 50 by default, as in transformers).
            repetition_penalty: divide the positive scores (multiply the negative ones) of tokens already in the
                sequence by this (> 0; 1 changes nothing).
            no_repeat_ngram_size: never produce an n-gram of this size twice in a sequence (prompt included).
            eos_token_id: an id or a list of ids that finish a row; a finished row is padded with
                `pad_token_id` (the first eos id when that is None), and generation stops when all are.
            bos_token_id: the prompt when `input_ids` is None.
            use_cache: reuse each layer's keys and values (causal models; the same result as recomputing).
            output_scores / output_logits: with `return_dict_in_generate`, each step's processed scores (beam
                search: log-probabilities) / raw logits, and for beam search `sequences_scores`.
            langs: one language id for every token, or the prompt's language ids (batch, prompt_len),
                each row continuing in the language of its last prompt token.
            generator: the random generator for sampling (default: torch's global one, as transformers').
            num_beams: beam search over this many beams (greedy search, not sampling), transformers'
                algorithm: a finished sequence (an eos id, or the length limit) scores the sum of its new tokens'
                log-probabilities over (new tokens) ** `length_penalty`.
            num_return_sequences: the best sequences returned per prompt (at most `num_beams`), or
                with `do_sample` that many samples per prompt.
            early_stopping: True stops a prompt's beam search once it has `num_beams` finished sequences;
                False when no running beam can score better at its current length (transformers' heuristic),
                "never" at the best possible length.
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
            ids = torch.from_numpy(start_ids(settings, config)).to(self.device)
        plan = generation_plan(config, settings, tuple(ids.shape), max_length_given=max_length is not None)
        if isinstance(langs, int):
            langs = torch.full_like(ids, langs)
        elif langs is None and not config.causal and config.uses_lang_embeddings:
            langs = torch.full_like(ids, config.lang_id)  # transformers' XLM: every position in config.lang_id

        if attention_mask is not None:
            lengths = prompt_lengths(attention_mask.cpu().numpy(), tuple(ids.shape))
            if (lengths < ids.shape[1]).any():
                return self._generate_groups(ids, lengths, langs, token_type_ids, plan, generator)
        return self._generate(ids, langs, token_type_ids, plan.for_prompt(config, ids.shape[1]), generator)

    def _generate_groups(
        self,
        ids: torch.Tensor,
        lengths: np.ndarray,
        langs: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        plan: GenerationPlan,
        generator: torch.Generator | None,
    ) -> torch.Tensor | GenerateDecoderOnlyOutput | GenerateBeamDecoderOnlyOutput:
        """`generate` on right-padded prompts: each group of equal length on its own, merged back in order. Every
        prompt may get the same number of new tokens (`max_length` counts the padded width, as in a left-padded
        batch); a shorter prompt has more room left in the position table."""
        groups = [np.flatnonzero(lengths == n) for n in np.unique(lengths)]
        results = []
        for rows in groups:
            n, index = int(lengths[rows[0]]), torch.from_numpy(rows).to(ids.device)
            part = [value.index_select(0, index)[:, :n] if value is not None else None
                    for value in (ids, langs, token_type_ids)]
            results.append(self._generate(*part, plan.for_prompt(self.config, n), generator))
        copies = plan.num_return_sequences
        outputs = [r.sequences if plan.return_dict_in_generate else r for r in results]
        merged = merge_groups([o.cpu().numpy() for o in outputs], groups, copies, plan.pad_token_id)
        sequences = torch.from_numpy(merged).to(ids)
        if not plan.return_dict_in_generate:
            return sequences
        rows_per_step = plan.num_beams if plan.num_beams > 1 else copies
        fields = {"sequences": sequences}
        for name in ("scores", "logits"):
            if getattr(results[0], name) is not None:
                steps = [[t.cpu().numpy() for t in getattr(r, name)] for r in results]
                fields[name] = tuple(torch.from_numpy(a).to(ids.device)
                                     for a in merge_group_steps(steps, groups, rows_per_step))
        if plan.num_beams == 1:
            return GenerateDecoderOnlyOutput(**fields)
        if results[0].sequences_scores is not None:
            scores = merge_groups([r.sequences_scores.cpu().numpy()[:, None] for r in results], groups, copies, 0)
            fields["sequences_scores"] = torch.from_numpy(scores[:, 0]).to(ids.device)
        indices = merge_beam_indices([r.beam_indices.cpu().numpy() for r in results], groups, copies, plan.num_beams)
        return GenerateBeamDecoderOnlyOutput(beam_indices=torch.from_numpy(indices).to(ids.device), **fields)

    def _next_logits(
        self, ids: torch.Tensor, langs: torch.Tensor | None, token_type_ids: torch.Tensor | None, cache: dict | None
    ) -> torch.Tensor:
        """The float32 scores (rows, vocab) of the token after each row of `ids`."""
        if self.config.causal:
            return self(ids, attention_mask=torch.ones_like(ids), langs=langs, token_type_ids=token_type_ids,
                        cache=cache).logits[:, -1, :].float()
        # masked LM: predict at an appended mask token; no attention mask, as in transformers (the model counts
        # the tokens that are not pad_index)
        mask = torch.full_like(ids[:, :1], self.config.mask_token_id)
        if langs is not None:
            langs = torch.cat([langs, langs[:, -1:]], dim=1)
        if token_type_ids is not None:
            token_type_ids = torch.cat([token_type_ids, token_type_ids[:, -1:]], dim=1)
        return self(torch.cat([ids, mask], dim=1), langs=langs, token_type_ids=token_type_ids).logits[:, -1, :].float()

    def _processed(self, plan: GenerationPlan, ids: torch.Tensor, scores: torch.Tensor, step: int) -> torch.Tensor:
        """`scores` through the logits processors that look at the ids (`xlm.generation_utils.process_logits`)."""
        if not plan.processes_logits:
            return scores
        processed = process_logits(plan, ids.cpu().numpy(), scores.cpu().numpy(), step)
        return torch.from_numpy(processed).to(scores.device)

    def _generate(
        self,
        ids: torch.Tensor,
        langs: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        plan: GenerationPlan,
        generator: torch.Generator | None,
    ) -> torch.Tensor | GenerateDecoderOnlyOutput | GenerateBeamDecoderOnlyOutput:
        """Greedy search or sampling on prompts of one length (beam search: `_beam_search`)."""
        if plan.num_beams > 1 and plan.max_new_tokens > 0:
            return self._beam_search(ids, langs, token_type_ids, plan)
        copies = plan.num_return_sequences
        if copies > 1:  # samples (or, with no room left, the prompts): each prompt repeated
            ids = ids.repeat_interleave(copies, dim=0)
            langs = langs.repeat_interleave(copies, dim=0) if langs is not None else None
            if token_type_ids is not None:
                token_type_ids = token_type_ids.repeat_interleave(copies, dim=0)
        next_langs = langs[:, -1:] if langs is not None else None
        next_types = token_type_ids[:, -1:] if token_type_ids is not None else None
        cache: dict | None = {} if plan.use_cache and self.config.causal else None
        eos = torch.tensor(plan.eos, device=ids.device) if plan.eos else None
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        scores_out, logits_out = [], []
        for step in range(plan.max_new_tokens):
            logits = self._next_logits(ids, langs, token_type_ids, cache)
            scores = self._processed(plan, ids, logits, step)
            if plan.do_sample:
                if plan.temperature != 1.0:
                    scores = scores / plan.temperature
                scores = filter_logits(scores, plan.top_k, plan.top_p)
                next_ids = torch.multinomial(scores.softmax(dim=-1), 1, generator=generator)[:, 0]
            else:
                next_ids = scores.argmax(dim=-1)
            scores_out.append(scores)
            logits_out.append(logits)
            if eos is not None:
                next_ids = torch.where(finished, plan.pad_token_id, next_ids)
                finished |= torch.isin(next_ids, eos)
            ids = torch.cat([ids, next_ids[:, None].to(ids.dtype)], dim=1)
            if langs is not None:
                langs = torch.cat([langs, next_langs], dim=1)
            if token_type_ids is not None:
                token_type_ids = torch.cat([token_type_ids, next_types], dim=1)
            if eos is not None and bool(finished.all()):
                break
        if not plan.return_dict_in_generate:
            return ids
        return GenerateDecoderOnlyOutput(
            sequences=ids,
            scores=tuple(scores_out) if plan.output_scores else None,
            logits=tuple(logits_out) if plan.output_logits else None,
        )

    def _beam_search(
        self,
        ids: torch.Tensor,
        langs: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        plan: GenerationPlan,
    ) -> torch.Tensor | GenerateBeamDecoderOnlyOutput:
        """`generate(num_beams > 1)`: transformers' beam search (`xlm.generation_utils.BeamSearch`)."""
        num_beams, vocab = plan.num_beams, self.config.vocab_size
        search = BeamSearch(ids.shape[0], plan, vocab)
        prompts = ids.cpu().numpy()
        ids = ids.repeat_interleave(num_beams, dim=0)  # (batch × beams, len), a prompt's beams together
        langs = langs.repeat_interleave(num_beams, dim=0) if langs is not None else None
        next_langs = langs[:, -1:] if langs is not None else None
        if token_type_ids is not None:
            token_type_ids = token_type_ids.repeat_interleave(num_beams, dim=0)
        next_types = token_type_ids[:, -1:] if token_type_ids is not None else None
        cache: dict | None = {} if plan.use_cache and self.config.causal else None
        scores_out, logits_out = [], []
        for step in range(plan.max_new_tokens):
            logits = self._next_logits(ids, langs, token_type_ids, cache)
            log_probs = self._processed(plan, ids, F.log_softmax(logits, dim=-1), step)
            scores_out.append(log_probs)
            logits_out.append(logits)
            running = torch.from_numpy(search.running_scores).to(log_probs.device)
            candidates = (log_probs.reshape(search.batch, num_beams, vocab) + running[:, :, None]).reshape(
                search.batch, num_beams * vocab)
            top_scores, top_index = candidates.topk(search.candidates, dim=1)
            source, tokens = search.step(step, top_scores.cpu().numpy(), top_index.cpu().numpy(), vocab)
            source = torch.from_numpy(source).to(ids.device)
            ids = torch.cat([ids[source], torch.from_numpy(tokens).to(ids)[:, None]], dim=1)
            if langs is not None:  # a prompt's beams share its language: next_langs needs no reordering
                langs = torch.cat([langs[source], next_langs], dim=1)
            if token_type_ids is not None:  # and its last token type
                token_type_ids = torch.cat([token_type_ids[source], next_types], dim=1)
            if cache is not None:
                for key, value in cache.items():
                    if key != "slen":
                        cache[key] = tuple(t.index_select(0, source) for t in value)
            if not search.running:
                break
        sequences, sequences_scores, beam_indices = search.result(prompts)
        sequences = torch.from_numpy(sequences).to(ids)
        if not plan.return_dict_in_generate:
            return sequences
        return GenerateBeamDecoderOnlyOutput(
            sequences=sequences,
            sequences_scores=torch.from_numpy(sequences_scores).to(ids.device) if plan.output_scores else None,
            scores=tuple(scores_out) if plan.output_scores else None,
            logits=tuple(logits_out) if plan.output_logits else None,
            beam_indices=torch.from_numpy(beam_indices).to(ids.device),
        )
