"""Left-to-right generation for causal XLM language models (greedy, top-k / top-p sampling, beam search,
KV cache)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
    ) -> torch.Tensor:
        """Extend each prompt by up to `max_new_tokens` tokens; returns (batch × num_return_sequences,
        prompt + new) ids, each prompt's sequences next to each other.

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
            num_beams: beam search over this many beams (greedy search, not sampling). A finished
                sequence (ending with `eos_token_id`, or at `max_new_tokens`) scores the sum of its new
                tokens' log-probabilities over (new tokens) ** `length_penalty`, as transformers'.
            num_return_sequences: the best sequences returned per prompt (at most `num_beams`), or
                with `do_sample` that many samples per prompt.
            early_stopping: stop a prompt's beam search once it has `num_beams` finished sequences;
                False stops when no running beam can score better (transformers' heuristic).
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
        for name, value in (("num_beams", num_beams), ("num_return_sequences", num_return_sequences)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if num_beams > 1 and do_sample:
            raise ValueError("beam search with do_sample=True (beam sampling) is not supported: use num_beams=1")
        if num_return_sequences > num_beams and not do_sample:
            raise ValueError(
                f"num_return_sequences={num_return_sequences} needs num_beams >= {num_return_sequences} "
                "(or do_sample=True): a search returns at most num_beams sequences"
            )
        if early_stopping not in (True, False):
            raise ValueError(f"early_stopping must be True or False, got {early_stopping!r}")
        max_new_tokens = min(max_new_tokens, config.max_position_embeddings - input_ids.shape[1])

        ids = input_ids
        if isinstance(langs, int):
            langs = torch.full_like(ids, langs)
        if num_beams > 1 and max_new_tokens > 0:
            return self._beam_search(ids, langs, max_new_tokens, num_beams, num_return_sequences, length_penalty,
                                     early_stopping, eos_token_id, use_cache)
        if num_return_sequences > 1:  # samples (or, with no room left, the prompts): each prompt repeated
            ids = ids.repeat_interleave(num_return_sequences, dim=0)
            langs = langs.repeat_interleave(num_return_sequences, dim=0) if langs is not None else None
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

    def _beam_search(
        self,
        ids: torch.Tensor,
        langs: torch.Tensor | None,
        max_new_tokens: int,
        num_beams: int,
        num_return_sequences: int,
        length_penalty: float,
        early_stopping: bool,
        eos_token_id: int | None,
        use_cache: bool,
    ) -> torch.Tensor:
        """`generate(num_beams > 1)`: each step keeps the `num_beams` best continuations of each prompt;
        a continuation ending with `eos_token_id` among them becomes a finished sequence instead."""
        batch, prompt_len = ids.shape
        ids = ids.repeat_interleave(num_beams, dim=0)  # (batch × beams, len), a prompt's beams together
        langs = langs.repeat_interleave(num_beams, dim=0) if langs is not None else None
        next_langs = langs[:, -1:] if langs is not None else None
        # the beams start equal: only the first one may extend at the first step
        scores = torch.full((batch, num_beams), float("-inf"), device=ids.device)
        scores[:, 0] = 0.0
        finished: list[list[tuple[float, torch.Tensor]]] = [[] for _ in range(batch)]
        done = [False] * batch
        cache: dict | None = {} if use_cache else None

        def add(hypotheses: list, score: float, tokens: torch.Tensor) -> None:
            hypotheses.append((score / len(tokens) ** length_penalty, tokens))
            hypotheses.sort(key=lambda h: -h[0])
            del hypotheses[num_beams:]

        for step in range(max_new_tokens):
            logits = self(ids, attention_mask=torch.ones_like(ids), langs=langs, cache=cache).logits[:, -1, :]
            log_probs = F.log_softmax(logits.float(), dim=-1)
            vocab = log_probs.shape[-1]
            candidates = (scores.reshape(-1, 1) + log_probs).reshape(batch, num_beams * vocab)
            top_scores, top_index = candidates.topk(min(2 * num_beams, num_beams * vocab), dim=1)
            new_scores = torch.full_like(scores, float("-inf"))
            source = torch.arange(batch, device=ids.device).repeat_interleave(num_beams) * num_beams
            new_tokens = torch.full((batch, num_beams), self.config.pad_index, dtype=ids.dtype, device=ids.device)
            for b, (row_scores, row_index) in enumerate(zip(top_scores.tolist(), top_index.tolist())):
                if done[b]:
                    continue
                kept = 0
                for rank, (score, index) in enumerate(zip(row_scores, row_index)):
                    beam, token = divmod(index, vocab)
                    if eos_token_id is not None and token == eos_token_id:
                        if rank < num_beams and score > float("-inf"):
                            tokens = torch.cat([ids[b * num_beams + beam, prompt_len:], ids.new_tensor([token])])
                            add(finished[b], score, tokens)
                        continue
                    new_scores[b, kept], source[b * num_beams + kept] = score, b * num_beams + beam
                    new_tokens[b, kept] = token
                    kept += 1
                    if kept == num_beams:
                        break
                if len(finished[b]) == num_beams:
                    # early_stopping=False: stop once no running beam can beat the worst finished sequence
                    best_running = float(new_scores[b, 0]) / (step + 1) ** length_penalty
                    done[b] = early_stopping or finished[b][-1][0] >= best_running
            ids = torch.cat([ids[source], new_tokens.reshape(-1, 1)], dim=1)
            if langs is not None:  # a prompt's beams share its language: next_langs needs no reordering
                langs = torch.cat([langs[source], next_langs], dim=1)
            if cache is not None:
                for key, value in cache.items():
                    if key != "slen":
                        cache[key] = tuple(t.index_select(0, source) for t in value)
            scores = new_scores
            if all(done):
                break
        for b in range(batch):
            if not done[b]:  # the running beams finish at the last step
                for beam in range(num_beams):
                    if scores[b, beam] > float("-inf"):
                        add(finished[b], float(scores[b, beam]), ids[b * num_beams + beam, prompt_len:])
        best = []
        for hypotheses in finished:
            tokens = [h[1] for h in hypotheses[:num_return_sequences]]
            # fewer sequences than asked only when the vocabulary can't fill the beams: repeat the last
            best += tokens + tokens[-1:] * (num_return_sequences - len(tokens))
        longest = max(len(tokens) for tokens in best)
        out = ids.new_full((len(best), prompt_len + longest), self.config.pad_index)
        out[:, :prompt_len] = ids[::num_beams, :prompt_len].repeat_interleave(num_return_sequences, dim=0)
        for row, tokens in enumerate(best):
            out[row, prompt_len : prompt_len + len(tokens)] = tokens
        return out
