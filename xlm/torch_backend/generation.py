"""Left-to-right generation for causal XLM language models (greedy, top-k / top-p sampling, beam search,
KV cache)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from xlm.generation_utils import BeamSearch, check_generate_arguments, merge_groups, prompt_lengths


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set to -inf every score outside the `top_k` best and outside the smallest set whose
    probability reaches `top_p` (nucleus); the best token always stays. logits: (batch, vocab)."""
    if top_k and top_k < logits.shape[-1]:
        kth_best = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


class XLMGenerationMixin:
    """`generate()` for XLMWithLMHeadModel built on a causal (`config.causal`) encoder."""

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        langs: torch.Tensor | int | None = None,
        eos_token_id: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        num_beams: int = 1,
        num_return_sequences: int = 1,
        length_penalty: float = 1.0,
        early_stopping: bool = False,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Extend each prompt by up to `max_new_tokens` tokens; returns (batch × num_return_sequences,
        prompt + new) ids, each prompt's sequences next to each other.

        Each new token is predicted from the last position, as the original XLM's CLM does.
        transformers' XLM `generate` appends `mask_token_id` and predicts there instead (with
        `config.lang_id` as language), so its tokens differ.

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
            generator: the random generator for sampling.
            num_beams: beam search over this many beams (greedy search, not sampling). A finished
                sequence (ending with `eos_token_id`, or at `max_new_tokens`) scores the sum of its new
                tokens' log-probabilities over (new tokens) ** `length_penalty`, as transformers'.
            num_return_sequences: the best sequences returned per prompt (at most `num_beams`), or
                with `do_sample` that many samples per prompt.
            early_stopping: stop a prompt's beam search once it has `num_beams` finished sequences;
                False stops when no running beam can score better (transformers' heuristic).
            attention_mask: 1 on the prompts' tokens, 0 on the padding after them (batch, prompt_len).
            token_type_ids: the prompts' token types (batch, prompt_len), each row continuing with its last.
        """
        config = self.config
        requested = max_new_tokens  # a shorter prompt has more room left
        max_new_tokens = check_generate_arguments(
            config, tuple(input_ids.shape), max_new_tokens, do_sample, temperature, top_p, num_beams,
            num_return_sequences, early_stopping,
        )

        ids = input_ids
        if isinstance(langs, int):
            langs = torch.full_like(ids, langs)
        if attention_mask is not None:
            lengths = prompt_lengths(attention_mask.cpu().numpy(), tuple(ids.shape))
            if (lengths < ids.shape[1]).any():
                groups = [np.flatnonzero(lengths == n) for n in np.unique(lengths)]
                options = dict(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
                               eos_token_id=eos_token_id, use_cache=use_cache, generator=generator,
                               num_beams=num_beams, num_return_sequences=num_return_sequences,
                               length_penalty=length_penalty, early_stopping=early_stopping)
                outputs = []
                for rows in groups:
                    n, index = int(lengths[rows[0]]), torch.from_numpy(rows).to(ids.device)
                    part = {name: value.index_select(0, index)[:, :n] for name, value in
                            (("langs", langs), ("token_type_ids", token_type_ids)) if value is not None}
                    generated = self.generate(ids.index_select(0, index)[:, :n], requested, **part, **options)
                    outputs.append(generated.cpu().numpy())
                merged = merge_groups(outputs, groups, num_return_sequences, config.pad_index)
                return torch.from_numpy(merged).to(ids)
        if num_beams > 1 and max_new_tokens > 0:
            return self._beam_search(ids, langs, token_type_ids, max_new_tokens, num_beams, num_return_sequences,
                                     length_penalty, early_stopping, eos_token_id, use_cache)
        if num_return_sequences > 1:  # samples (or, with no room left, the prompts): each prompt repeated
            ids = ids.repeat_interleave(num_return_sequences, dim=0)
            langs = langs.repeat_interleave(num_return_sequences, dim=0) if langs is not None else None
            if token_type_ids is not None:
                token_type_ids = token_type_ids.repeat_interleave(num_return_sequences, dim=0)
        next_langs = langs[:, -1:] if langs is not None else None
        next_types = token_type_ids[:, -1:] if token_type_ids is not None else None
        cache: dict | None = {} if use_cache else None
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            attention_mask = torch.ones_like(ids)
            logits = self(ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
                          cache=cache).logits[:, -1, :]
            if do_sample:
                logits = filter_logits(logits.float() / temperature, top_k, top_p)
                next_ids = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]
            else:
                next_ids = logits.argmax(dim=-1)
            if eos_token_id is not None:
                next_ids = torch.where(finished, config.pad_index, next_ids)
                finished |= next_ids == eos_token_id
            ids = torch.cat([ids, next_ids[:, None]], dim=1)
            if langs is not None:
                langs = torch.cat([langs, next_langs], dim=1)
            if token_type_ids is not None:
                token_type_ids = torch.cat([token_type_ids, next_types], dim=1)
            if eos_token_id is not None and bool(finished.all()):
                break
        return ids

    def _beam_search(
        self,
        ids: torch.Tensor,
        langs: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        max_new_tokens: int,
        num_beams: int,
        num_return_sequences: int,
        length_penalty: float,
        early_stopping: bool,
        eos_token_id: int | None,
        use_cache: bool,
    ) -> torch.Tensor:
        """`generate(num_beams > 1)`: each step keeps the `num_beams` best continuations of each prompt
        (`xlm.generation_utils.BeamSearch`)."""
        search = BeamSearch(ids.shape[0], num_beams, num_return_sequences, length_penalty, early_stopping,
                            eos_token_id, self.config.pad_index)
        prompts = ids.cpu().numpy()
        ids = ids.repeat_interleave(num_beams, dim=0)  # (batch × beams, len), a prompt's beams together
        langs = langs.repeat_interleave(num_beams, dim=0) if langs is not None else None
        next_langs = langs[:, -1:] if langs is not None else None
        if token_type_ids is not None:
            token_type_ids = token_type_ids.repeat_interleave(num_beams, dim=0)
        next_types = token_type_ids[:, -1:] if token_type_ids is not None else None
        cache: dict | None = {} if use_cache else None
        for step in range(max_new_tokens):
            logits = self(ids, attention_mask=torch.ones_like(ids), langs=langs, token_type_ids=token_type_ids,
                          cache=cache).logits[:, -1, :]
            log_probs = F.log_softmax(logits.float(), dim=-1)
            vocab = log_probs.shape[-1]
            scores = torch.from_numpy(search.scores).to(log_probs.device)
            candidates = (scores.reshape(-1, 1) + log_probs).reshape(search.batch, num_beams * vocab)
            top_scores, top_index = candidates.topk(search.candidates(vocab), dim=1)
            source = search.step(step, top_scores.tolist(), top_index.tolist(), vocab)
            source = torch.from_numpy(source).to(ids.device)
            new_tokens = torch.from_numpy(search.tokens[:, -1]).to(ids)
            ids = torch.cat([ids[source], new_tokens.reshape(-1, 1)], dim=1)
            if langs is not None:  # a prompt's beams share its language: next_langs needs no reordering
                langs = torch.cat([langs[source], next_langs], dim=1)
            if token_type_ids is not None:  # and its last token type
                token_type_ids = torch.cat([token_type_ids[source], next_types], dim=1)
            if cache is not None:
                for key, value in cache.items():
                    if key != "slen":
                        cache[key] = tuple(t.index_select(0, source) for t in value)
            if search.all_done:
                break
        return torch.from_numpy(search.result(prompts)).to(ids)
