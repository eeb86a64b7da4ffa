"""The framework-free part of `generate()`, shared by the PyTorch and Keras stacks: argument checks, prompts
of several lengths, and the bookkeeping of beam search. Each stack runs its model, log-softmax and top-k;
this module decides which continuations survive."""

from __future__ import annotations

import numpy as np

from xlm.config import XLMConfig


def check_generate_arguments(
    config: XLMConfig,
    prompt_shape: tuple[int, ...],
    max_new_tokens: int,
    do_sample: bool,
    temperature: float,
    top_p: float,
    num_beams: int,
    num_return_sequences: int,
    early_stopping: bool,
) -> int:
    """Raise ValueError for arguments `generate()` can't take; return `max_new_tokens` cut to the room left in
    the position table."""
    if not config.causal:
        raise ValueError(
            "generate() needs a causal model (config.causal=True); this masked LM sees both directions, "
            "use it to fill masks instead"
        )
    if len(prompt_shape) != 2 or prompt_shape[1] == 0:
        raise ValueError(f"input_ids must be (batch, prompt_len) with prompt_len >= 1, got {list(prompt_shape)}")
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
    return min(max_new_tokens, config.max_position_embeddings - prompt_shape[1])


def prompt_lengths(attention_mask: np.ndarray, prompt_shape: tuple[int, ...]) -> np.ndarray:
    """Each prompt's length (batch,) from a right-padded attention mask: ones on its tokens, then zeros.

    A mask of another shape, with padding before a token or with no token in a row is a ValueError.
    """
    mask = np.asarray(attention_mask) != 0
    if mask.shape != tuple(prompt_shape):
        raise ValueError(f"attention_mask has shape {list(mask.shape)}; expected input_ids' {list(prompt_shape)}")
    lengths = mask.sum(axis=1)
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise ValueError(f"attention_mask row {empty[0]} masks every token: a prompt needs at least one")
    left_padded = np.flatnonzero((mask != (np.arange(mask.shape[1]) < lengths[:, None])).any(axis=1))
    if left_padded.size:
        raise ValueError(
            f"attention_mask row {left_padded[0]} has padding before a token: generate() continues each prompt "
            "from its last token, so pad on the right (the tokenizer's default padding_side)"
        )
    return lengths


def merge_groups(outputs: list[np.ndarray], groups: list[np.ndarray], num_return_sequences: int,
                 pad_index: int) -> np.ndarray:
    """Put the generations of prompt groups back in batch order: `outputs[g]` holds `num_return_sequences` rows
    for each batch row in `groups[g]`; shorter rows are padded with `pad_index` on the right."""
    batch = sum(len(rows) for rows in groups)
    out = np.full((batch * num_return_sequences, max(o.shape[1] for o in outputs)), pad_index,
                  dtype=outputs[0].dtype)
    for rows, generated in zip(groups, outputs):
        targets = (np.asarray(rows)[:, None] * num_return_sequences + np.arange(num_return_sequences)).reshape(-1)
        out[targets, : generated.shape[1]] = generated
    return out


class BeamSearch:
    """The state of a beam search over `batch` prompts with `num_beams` beams each, a prompt's beams next to
    each other (row b · num_beams + beam).

    Each step, the stack adds its log-probabilities to `scores`, takes the `candidates` best of each prompt's
    num_beams × vocab continuations and hands them to `step`. A continuation ending with `eos_token_id` among
    the best num_beams becomes a finished sequence, scored as the sum of its new tokens' log-probabilities
    over (new tokens) ** `length_penalty` (transformers' scoring); the best num_beams others run on.
    """

    def __init__(
        self,
        batch: int,
        num_beams: int,
        num_return_sequences: int,
        length_penalty: float,
        early_stopping: bool,
        eos_token_id: int | None,
        pad_index: int,
    ) -> None:
        self.batch, self.num_beams, self.num_return_sequences = batch, num_beams, num_return_sequences
        self.length_penalty, self.early_stopping = length_penalty, early_stopping
        self.eos_token_id, self.pad_index = eos_token_id, pad_index
        # the beams start equal: only the first one may extend at the first step
        self.scores = np.full((batch, num_beams), -np.inf, dtype=np.float32)
        self.scores[:, 0] = 0.0
        self.tokens = np.zeros((batch * num_beams, 0), dtype=np.int64)  # each running beam's new tokens
        self.finished: list[list[tuple[float, np.ndarray]]] = [[] for _ in range(batch)]
        self.done = [False] * batch

    def candidates(self, vocab: int) -> int:
        """How many of a prompt's best continuations `step` needs: enough to fill the beams past eos ones."""
        return min(2 * self.num_beams, self.num_beams * vocab)

    def _add(self, hypotheses: list, score: float, tokens: np.ndarray) -> None:
        hypotheses.append((score / len(tokens) ** self.length_penalty, tokens))
        hypotheses.sort(key=lambda h: -h[0])
        del hypotheses[self.num_beams :]

    def step(self, step: int, top_scores: list[list[float]], top_index: list[list[int]], vocab: int) -> np.ndarray:
        """Take the step's best continuations of each prompt (scores, flat indices beam · vocab + token, best
        first); return the row each new beam continues (batch · num_beams,). `scores` and `tokens` follow."""
        num_beams = self.num_beams
        new_scores = np.full_like(self.scores, -np.inf)
        source = np.repeat(np.arange(self.batch), num_beams) * num_beams
        new_tokens = np.full((self.batch, num_beams), self.pad_index, dtype=np.int64)
        for b, (row_scores, row_index) in enumerate(zip(top_scores, top_index)):
            if self.done[b]:
                continue
            kept = 0
            for rank, (score, index) in enumerate(zip(row_scores, row_index)):
                beam, token = divmod(int(index), vocab)
                if self.eos_token_id is not None and token == self.eos_token_id:
                    if rank < num_beams and score > -np.inf:
                        tokens = np.append(self.tokens[b * num_beams + beam], token)
                        self._add(self.finished[b], score, tokens)
                    continue
                new_scores[b, kept], source[b * num_beams + kept] = score, b * num_beams + beam
                new_tokens[b, kept] = token
                kept += 1
                if kept == num_beams:
                    break
            if len(self.finished[b]) == num_beams:
                # early_stopping=False: stop once no running beam can beat the worst finished sequence
                best_running = float(new_scores[b, 0]) / (step + 1) ** self.length_penalty
                self.done[b] = self.early_stopping or self.finished[b][-1][0] >= best_running
        self.tokens = np.concatenate([self.tokens[source], new_tokens.reshape(-1, 1)], axis=1)
        self.scores = new_scores
        return source

    @property
    def all_done(self) -> bool:
        return all(self.done)

    def result(self, prompts: np.ndarray) -> np.ndarray:
        """The best `num_return_sequences` sequences of each prompt, prompt included, padded with `pad_index`:
        (batch · num_return_sequences, prompt_len + longest)."""
        num_beams = self.num_beams
        for b in range(self.batch):
            if not self.done[b]:  # the running beams finish at the last step
                for beam in range(num_beams):
                    if self.scores[b, beam] > -np.inf:
                        self._add(self.finished[b], float(self.scores[b, beam]), self.tokens[b * num_beams + beam])
        best = []
        for hypotheses in self.finished:
            tokens = [h[1] for h in hypotheses[: self.num_return_sequences]]
            # fewer sequences than asked only when the vocabulary can't fill the beams: repeat the last
            best += tokens + tokens[-1:] * (self.num_return_sequences - len(tokens))
        prompt_len = prompts.shape[1]
        out = np.full((len(best), prompt_len + max(len(t) for t in best)), self.pad_index, dtype=prompts.dtype)
        out[:, :prompt_len] = np.repeat(prompts, self.num_return_sequences, axis=0)
        for row, tokens in enumerate(best):
            out[row, prompt_len : prompt_len + len(tokens)] = tokens
        return out
