"""The framework-free part of `generate()`, shared by the PyTorch and Keras stacks: the settings (a
`GenerationConfig` merged with the call's arguments, checked, lengths resolved), the logits processors that
work on ids (repetition penalty, no-repeat n-grams, minimum length), prompts of several lengths, and the
bookkeeping of beam search. Each stack runs its model, log-softmax, sampling warpers and top-k; this module
decides what the scores become and which continuations survive, as transformers 4.57 does."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from xlm.config import XLMConfig
from xlm.generation_config import GENERATION_DEFAULTS, GenerationConfig

#: transformers' stand-in for "minus infinity" in beam scores (it keeps sums finite).
BEAM_FILL = np.float32(-1.0e9)


@dataclasses.dataclass(frozen=True)
class GenerationPlan:
    """The settings of one `generate()` call, checked and in the form the loops use: lengths as new-token
    counts, `eos` as a tuple of ids, `pad_token_id` never None."""

    max_new_tokens: int
    min_new_tokens: int
    eos: tuple[int, ...]
    pad_token_id: int
    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    num_beams: int
    num_return_sequences: int
    length_penalty: float
    early_stopping: bool | str
    repetition_penalty: float
    no_repeat_ngram_size: int
    use_cache: bool
    output_scores: bool
    output_logits: bool
    return_dict_in_generate: bool

    @property
    def processes_logits(self) -> bool:
        """Whether `process_logits` changes anything (else the stacks skip the trip through numpy)."""
        return (self.repetition_penalty != 1.0 or self.no_repeat_ngram_size > 0
                or (self.min_new_tokens > 0 and bool(self.eos)))

    def for_prompt(self, config: XLMConfig, prompt_len: int) -> "GenerationPlan":
        """This plan with `max_new_tokens` cut to the room a prompt of `prompt_len` leaves in the position table."""
        room = max(0, config.max_position_embeddings - prompt_len)
        return dataclasses.replace(self, max_new_tokens=min(self.max_new_tokens, room))


def merge_generation_config(
    model_generation_config: GenerationConfig, generation_config: GenerationConfig | None, **kwargs: Any
) -> GenerationConfig:
    """The settings of one call, as transformers merges them: the call's arguments (those not None) over
    `generation_config`, whose default values fall back to the model's `generation_config`."""
    if generation_config is None:
        merged = model_generation_config.copy()
    else:
        if not isinstance(generation_config, GenerationConfig):
            raise ValueError(
                f"generation_config must be an xlm.GenerationConfig, got {type(generation_config).__name__}"
            )
        merged = generation_config.copy()
        for key, model_value in model_generation_config.to_dict().items():
            default = GENERATION_DEFAULTS.get(key)
            if getattr(merged, key, None) == default and model_value != default:
                setattr(merged, key, model_value)
    merged.update(**{key: value for key, value in kwargs.items() if value is not None})
    return merged


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, low: int) -> int:
    if not _is_int(value) or value < low:
        limit = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {limit}, got {value!r}")
    return int(value)


def _check_number(name: str, value: Any, positive: bool = False) -> float:
    if not isinstance(value, (int, float, np.number)) or isinstance(value, bool) or (positive and not value > 0):
        raise ValueError(f"{name} must be a {'positive ' if positive else ''}number, got {value!r}")
    return float(value)


def _token_id(name: str, value: Any, vocab_size: int) -> int:
    if not _is_int(value) or not 0 <= value < vocab_size:
        raise ValueError(f"{name} must be a token id in [0, {vocab_size}) (vocab_size), got {value!r}")
    return int(value)


def start_ids(settings: GenerationConfig, config: XLMConfig) -> np.ndarray:
    """The prompt `generate()` starts from when given no `input_ids`: one `bos_token_id` (1, 1)."""
    if settings.bos_token_id is None:
        raise ValueError("bos_token_id has to be defined when no input_ids are provided")
    return np.full((1, 1), _token_id("bos_token_id", settings.bos_token_id, config.vocab_size), dtype=np.int64)


def generation_plan(
    config: XLMConfig, settings: GenerationConfig, prompt_shape: tuple[int, ...], max_length_given: bool
) -> GenerationPlan:
    """Check `settings` for a batch of prompts `prompt_shape` and resolve its lengths (transformers' rules:
    `max_new_tokens` wins over `max_length`; the default `max_length=20` means 20 new tokens); ValueError
    names the first bad argument. `max_length_given`: the call passed `max_length` itself. `max_new_tokens` is
    not yet cut to the position table (`GenerationPlan.for_prompt` does that)."""
    if len(prompt_shape) != 2 or prompt_shape[1] == 0:
        raise ValueError(f"input_ids must be (batch, prompt_len) with prompt_len >= 1, got {list(prompt_shape)}")
    prompt_len = prompt_shape[1]
    vocab = config.vocab_size
    s = settings
    num_beams = _check_int("num_beams", s.num_beams, 1)
    num_return_sequences = _check_int("num_return_sequences", s.num_return_sequences, 1)
    if s.do_sample not in (True, False):
        raise ValueError(f"do_sample must be True or False, got {s.do_sample!r}")
    do_sample = bool(s.do_sample)
    temperature = _check_number("temperature", s.temperature, positive=do_sample)
    top_k = _check_int("top_k", 0 if s.top_k is None else s.top_k, 0)
    top_p = _check_number("top_p", 1.0 if s.top_p is None else s.top_p)
    if not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be in [0, 1], got {top_p}")
    repetition_penalty = _check_number("repetition_penalty", 1.0 if s.repetition_penalty is None
                                       else s.repetition_penalty, positive=True)
    no_repeat_ngram_size = _check_int("no_repeat_ngram_size", s.no_repeat_ngram_size or 0, 0)
    length_penalty = _check_number("length_penalty", s.length_penalty)
    if s.early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {s.early_stopping!r}")
    if num_beams > 1 and do_sample:
        raise ValueError("beam search with do_sample=True (beam sampling) is not supported: use num_beams=1")
    if num_return_sequences > num_beams and not do_sample:
        raise ValueError(
            f"num_return_sequences={num_return_sequences} needs num_beams >= {num_return_sequences} "
            "(or do_sample=True): a search returns at most num_beams sequences"
        )
    eos = s.eos_token_id
    if eos is None:
        eos = ()
    elif _is_int(eos):
        eos = (eos,)
    elif isinstance(eos, (list, tuple)) and eos:
        eos = tuple(eos)
    else:
        raise ValueError(f"eos_token_id must be a token id or a non-empty list of them, got {eos!r}")
    eos = tuple(_token_id("eos_token_id", e, vocab) for e in eos)
    pad = s.pad_token_id
    if pad is None:  # transformers pads finished rows with the first eos id then
        pad = eos[0] if eos else config.pad_index
    pad = _token_id("pad_token_id", pad, vocab)
    if not config.causal:
        _token_id("config.mask_token_id", config.mask_token_id, vocab)

    if s.max_new_tokens is not None:
        max_new_tokens = _check_int("max_new_tokens", s.max_new_tokens, 0)
    else:
        max_length = _check_int("max_length", s.max_length, 1)
        if max_length == GENERATION_DEFAULTS["max_length"] and not max_length_given:
            max_new_tokens = max_length  # transformers: the default max_length means 20 new tokens
        elif prompt_len >= max_length:
            raise ValueError(
                f"Input length of input_ids is {prompt_len}, but max_length is set to {max_length}: "
                "increase max_length or, better yet, set max_new_tokens"
            )
        else:
            max_new_tokens = max_length - prompt_len
    if s.min_new_tokens is not None:
        min_new_tokens = _check_int("min_new_tokens", s.min_new_tokens, 0)
    else:
        min_new_tokens = max(0, _check_int("min_length", s.min_length or 0, 0) - prompt_len)
    return GenerationPlan(
        max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, eos=eos, pad_token_id=pad,
        do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, num_beams=num_beams,
        num_return_sequences=num_return_sequences, length_penalty=length_penalty, early_stopping=s.early_stopping,
        repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
        use_cache=bool(s.use_cache), output_scores=bool(s.output_scores), output_logits=bool(s.output_logits),
        return_dict_in_generate=bool(s.return_dict_in_generate),
    )


def banned_ngram_tokens(ids: np.ndarray, ngram_size: int) -> list[list[int]]:
    """For each row of `ids` (rows, len), the tokens that would repeat one of its n-grams of `ngram_size`."""
    banned = []
    for row in np.asarray(ids).tolist():
        if len(row) + 1 < ngram_size:
            banned.append([])
            continue
        seen: dict[tuple, list[int]] = {}
        for start in range(len(row) - ngram_size + 1):
            seen.setdefault(tuple(row[start : start + ngram_size - 1]), []).append(row[start + ngram_size - 1])
        banned.append(seen.get(tuple(row[len(row) - ngram_size + 1 :]), []))
    return banned


def process_logits(plan: GenerationPlan, ids: np.ndarray, scores: np.ndarray, new_tokens: int) -> np.ndarray:
    """transformers' logits processors, in its order, on float32 `scores` (rows, vocab) of the sequences `ids`
    (rows, len; prompt and `new_tokens` generated tokens): repetition penalty, no-repeat n-grams, minimum length."""
    scores = np.array(scores, dtype=np.float32)
    ids = np.asarray(ids, dtype=np.int64)
    if plan.repetition_penalty != 1.0:
        seen = np.take_along_axis(scores, ids, axis=1)
        penalty = np.float32(plan.repetition_penalty)
        np.put_along_axis(scores, ids, np.where(seen < 0, seen * penalty, seen / penalty), axis=1)
    if plan.no_repeat_ngram_size > 0:
        for row, tokens in enumerate(banned_ngram_tokens(ids, plan.no_repeat_ngram_size)):
            scores[row, tokens] = -np.inf
    if plan.eos and new_tokens < plan.min_new_tokens:
        scores[:, list(plan.eos)] = -np.inf
    return scores


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


def _group_rows(groups: list[np.ndarray], copies: int) -> list[np.ndarray]:
    """The result rows of each prompt group: `copies` rows for each of its batch rows."""
    return [(np.asarray(rows)[:, None] * copies + np.arange(copies)).reshape(-1) for rows in groups]


def merge_groups(outputs: list[np.ndarray], groups: list[np.ndarray], num_return_sequences: int,
                 pad_index: int) -> np.ndarray:
    """Put the generations of prompt groups back in batch order: `outputs[g]` holds `num_return_sequences` rows
    for each batch row in `groups[g]`; shorter rows are padded with `pad_index` on the right."""
    batch = sum(len(rows) for rows in groups)
    out = np.full((batch * num_return_sequences, max(o.shape[1] for o in outputs)), pad_index,
                  dtype=outputs[0].dtype)
    for targets, generated in zip(_group_rows(groups, num_return_sequences), outputs):
        out[targets, : generated.shape[1]] = generated
    return out


def merge_group_steps(steps: list[list[np.ndarray]], groups: list[np.ndarray], copies: int) -> tuple:
    """Per-step arrays (`scores`, `logits`) of prompt groups in batch order: step t of `steps[g]` holds `copies`
    rows for each batch row of `groups[g]`; a group that stopped earlier has -inf rows at the later steps."""
    batch = sum(len(rows) for rows in groups)
    targets = _group_rows(groups, copies)
    merged = []
    for t in range(max(len(s) for s in steps)):
        vocab = next(s[t].shape[1] for s in steps if len(s) > t)
        out = np.full((batch * copies, vocab), -np.inf, dtype=np.float32)
        for rows, group_steps in zip(targets, steps):
            if len(group_steps) > t:
                out[rows] = group_steps[t]
        merged.append(out)
    return tuple(merged)


def merge_beam_indices(indices: list[np.ndarray], groups: list[np.ndarray], num_return_sequences: int,
                       num_beams: int) -> np.ndarray:
    """`beam_indices` of prompt groups in batch order, each group's running-beam rows renumbered to the batch's
    (row b · num_beams + beam); -1 past a sequence's end."""
    batch = sum(len(rows) for rows in groups)
    out = np.full((batch * num_return_sequences, max(i.shape[1] for i in indices)), -1, dtype=np.int64)
    for rows, targets, group_indices in zip(groups, _group_rows(groups, num_return_sequences), indices):
        local_batch, beam = np.divmod(group_indices, num_beams)
        renumbered = np.asarray(rows)[local_batch] * num_beams + beam
        out[targets, : group_indices.shape[1]] = np.where(group_indices < 0, -1, renumbered)
    return out


class BeamSearch:
    """transformers 4.57's beam search over `batch` prompts with `num_beams` running beams each, a prompt's
    beams next to each other (row b · num_beams + beam), its bookkeeping in numpy.

    Each step the stack adds `running_scores` to its (processed) log-probabilities, takes the `candidates` best
    of each prompt's num_beams × vocab continuations and hands them to `step`. Of these, a continuation that
    ends with an eos id or reaches `max_new_tokens` is finished, if among the best num_beams; it scores the sum
    of its new tokens' log-probabilities over (new tokens) ** `length_penalty`, and the best num_beams finished
    ones are kept. The best num_beams unfinished ones run on. Search stops when no running beam can beat the
    finished ones (`early_stopping` False: transformers' heuristic; "never": at the best possible length), or,
    with True, once every prompt has num_beams finished sequences.
    """

    def __init__(self, batch: int, plan: GenerationPlan, vocab: int) -> None:
        self.batch, self.num_beams = batch, plan.num_beams
        self.plan = plan
        num_beams, steps = plan.num_beams, plan.max_new_tokens
        self.candidates = min(max(2, 1 + len(plan.eos)) * num_beams, num_beams * vocab)
        # transformers fills unused places with the pad id (the first eos id where that is 0), as given
        self.fill = plan.pad_token_id if plan.pad_token_id or not plan.eos else plan.eos[0]
        self.running_tokens = np.full((batch, num_beams, steps), self.fill, dtype=np.int64)
        self.running_indices = np.full((batch, num_beams, steps), -1, dtype=np.int64)
        # only the first beam may extend at the first step
        self.running_scores = np.zeros((batch, num_beams), dtype=np.float32)
        self.running_scores[:, 1:] = BEAM_FILL
        self.tokens = self.running_tokens.copy()
        self.indices = self.running_indices.copy()
        self.scores = np.full((batch, num_beams), BEAM_FILL, dtype=np.float32)
        self.is_finished = np.zeros((batch, num_beams), dtype=bool)
        self.can_improve = np.ones((batch, 1), dtype=bool)
        self.running = True

    def step(self, step: int, top_scores: np.ndarray, top_index: np.ndarray, vocab: int
             ) -> tuple[np.ndarray, np.ndarray]:
        """Take the step's `candidates` best continuations of each prompt (scores and flat indices
        beam · vocab + token, (batch, candidates), best first); return the row each new running beam continues
        and its new token, both (batch · num_beams,)."""
        plan, num_beams, batch = self.plan, self.num_beams, self.batch
        top_scores = np.asarray(top_scores, dtype=np.float32)
        beam, token = np.divmod(np.asarray(top_index, dtype=np.int64), vocab)
        top_tokens = np.take_along_axis(self.running_tokens, beam[..., None], axis=1)
        top_tokens[:, :, step] = token
        rows = beam + np.arange(batch)[:, None] * num_beams
        top_indices = np.take_along_axis(self.running_indices, beam[..., None], axis=1)
        top_indices[:, :, step] = rows
        ends = np.isin(token, plan.eos) | (step + 1 >= plan.max_new_tokens)

        # the best num_beams unfinished continuations run on
        running_scores = top_scores + ends.astype(np.float32) * BEAM_FILL
        keep = _top(running_scores, num_beams)
        self.running_tokens = np.take_along_axis(top_tokens, keep[..., None], axis=1)
        self.running_scores = np.take_along_axis(running_scores, keep, axis=1)
        self.running_indices = np.take_along_axis(top_indices, keep[..., None], axis=1)
        source = np.take_along_axis(rows, keep, axis=1).reshape(-1)

        # finished continuations among the best num_beams join the finished ones if they score better
        just_finished = ends.copy()
        just_finished[:, num_beams:] = False
        finished_scores = top_scores / np.float32((step + 1) ** plan.length_penalty)
        full = self.is_finished.all(axis=1, keepdims=True) & (plan.early_stopping is True)
        for closed in (full, ~self.can_improve, ~just_finished):
            finished_scores = finished_scores + closed.astype(np.float32) * BEAM_FILL
        best = _top(np.concatenate([self.scores, finished_scores], axis=1), num_beams)
        self.tokens = np.take_along_axis(np.concatenate([self.tokens, top_tokens], axis=1), best[..., None], axis=1)
        self.scores = np.take_along_axis(np.concatenate([self.scores, finished_scores], axis=1), best, axis=1)
        self.indices = np.take_along_axis(np.concatenate([self.indices, top_indices], axis=1), best[..., None],
                                          axis=1)
        self.is_finished = np.take_along_axis(np.concatenate([self.is_finished, just_finished], axis=1), best,
                                              axis=1)

        # can a running beam still beat the worst finished one?
        if plan.early_stopping == "never" and plan.length_penalty > 0.0:
            best_length = plan.max_new_tokens
        else:
            best_length = step + 1
        best_running = self.running_scores[:, :1] / np.float32(best_length**plan.length_penalty)
        worst_finished = np.where(self.is_finished, self.scores.min(axis=1, keepdims=True), BEAM_FILL)
        self.can_improve &= (best_running > worst_finished).any(axis=1, keepdims=True)
        open_beams = not (self.is_finished.all() and plan.early_stopping is True)
        self.running = bool(self.can_improve.any()) and open_beams and not bool(ends.all())
        return source, self.running_tokens[:, :, step].reshape(-1)

    def result(self, prompts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The best `num_return_sequences` sequences of each prompt, prompt included, cut to the longest
        (batch · num_return_sequences, prompt_len + longest); their scores; their beam indices (-1 past the end)."""
        keep = self.plan.num_return_sequences
        indices = self.indices[:, :keep].reshape(self.batch * keep, -1)
        longest = int((indices >= 0).sum(axis=1).max())
        tokens = self.tokens[:, :keep].reshape(self.batch * keep, -1)[:, :longest]
        sequences = np.concatenate([np.repeat(prompts, keep, axis=0), tokens.astype(prompts.dtype)], axis=1)
        return sequences, self.scores[:, :keep].reshape(-1), indices[:, :longest]


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """The indices of each row's `k` best scores, best first (equal scores in index order)."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]
