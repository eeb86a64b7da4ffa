"""Left-to-right generation for causal XLM language models (greedy, top-k / top-p sampling, KV cache)."""

from __future__ import annotations

import torch


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
    ) -> torch.Tensor:
        """Extend each prompt by up to `max_new_tokens` tokens; returns (batch, prompt + new) ids.

        Each new token is predicted from the last position, as the original XLM's CLM does.
        transformers' XLM `generate` appends `mask_token_id` and predicts there instead (with
        `config.lang_id` as language), so its tokens differ.

        Args:
            input_ids: prompts of equal length without padding (batch, prompt_len).
            do_sample: sample from the (temperature-scaled, top-k / top-p filtered) distribution
                instead of taking the most likely token.
            langs: one language id for every token, or the prompt's language ids (batch, prompt_len),
                each row continuing in the language of its last prompt token.
            eos_token_id: rows that produce it are finished and padded with `pad_index` afterwards;
                generation stops when every row is finished.
            use_cache: reuse each layer's keys and values (the same result as recomputing).
            generator: the random generator for sampling.
        """
        config = self.config
        if not config.causal:
            raise ValueError(
                "generate() needs a causal model (config.causal=True); this masked LM sees both directions, "
                "use it to fill masks instead"
            )
        if input_ids.dim() != 2 or input_ids.shape[1] == 0:
            raise ValueError(f"input_ids must be (batch, prompt_len) with prompt_len >= 1, got {list(input_ids.shape)}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        max_new_tokens = min(max_new_tokens, config.max_position_embeddings - input_ids.shape[1])

        ids = input_ids
        if isinstance(langs, int):
            langs = torch.full_like(ids, langs)
        next_langs = langs[:, -1:] if langs is not None else None
        cache: dict | None = {} if use_cache else None
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            attention_mask = torch.ones_like(ids)
            logits = self(ids, attention_mask=attention_mask, langs=langs, cache=cache).logits[:, -1, :]
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
            if eos_token_id is not None and bool(finished.all()):
                break
        return ids
