"""Framework-free pieces of the model stacks: the sinusoidal table, input validation and the
sizes and new rows of `resize_token_embeddings`.

Both stacks call the same checks with plain Python numbers, so they raise the same messages
before any kernel runs (TensorFlow's embedding lookup on GPU silently returns zeros for
out-of-range ids, so the check cannot be left to the lookup).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def sinusoidal_table(n_positions: int, dim: int) -> np.ndarray:
    """Fixed position embeddings: sin on even columns, cos on odd ones (float32, n_positions × dim).

    angle(pos, j) = pos / 10000^(2·(j//2)/dim), computed in float64 as the reference does.
    """
    positions = np.arange(n_positions, dtype=np.float64)[:, None]
    exponents = 2 * (np.arange(dim) // 2) / dim
    angles = positions / np.power(10000.0, exponents)[None, :]
    table = np.empty((n_positions, dim), dtype=np.float32)
    table[:, 0::2] = np.sin(angles[:, 0::2])
    table[:, 1::2] = np.cos(angles[:, 1::2])
    return table


def check_same_shape(reference_name: str, reference: Sequence[int], **others: Sequence[int] | None) -> None:
    """Raise ValueError if any of `others` (name=shape) differs from `reference`'s shape."""
    ref = tuple(reference)
    for name, shape in others.items():
        if shape is not None and tuple(shape) != ref:
            raise ValueError(f"{name} has shape {list(shape)} but {reference_name} has shape {list(ref)}; they must match")


def check_id_range(name: str, min_id: int, max_id: int, limit: int, limit_name: str) -> None:
    """Raise ValueError if ids fall outside [0, limit)."""
    if min_id < 0 or max_id >= limit:
        bad = min_id if min_id < 0 else max_id
        raise ValueError(f"{name} contains id {bad}, outside [0, {limit}) ({limit_name} = {limit})")


def check_sequence_length(length: int, max_positions: int) -> None:
    """Raise ValueError if a sequence is longer than the position table."""
    if length > max_positions:
        raise ValueError(
            f"sequence length {length} exceeds max_position_embeddings = {max_positions}"
        )


def check_new_positions(past: int, length: int) -> None:
    """Raise ValueError unless the input (`length` positions, `past` of them already in the cache)
    brings at least one new position."""
    if length == 0:
        raise ValueError("the input has no positions (sequence length 0): give at least one token")
    if past >= length:
        raise ValueError(
            f"the cache already holds {past} positions but the input has only {length}: pass the whole "
            "sequence, including at least one new position"
        )


def id_range_message(name: str, limit: int, limit_name: str) -> str:
    """The message of `check_id_range`, for graph-mode assertions that cannot format the bad id."""
    return f"{name} contains an id outside [0, {limit}) ({limit_name} = {limit})"


def sequence_length_message(max_positions: int) -> str:
    """The message of `check_sequence_length` for graph-mode assertions."""
    return f"sequence length exceeds max_position_embeddings = {max_positions}"


SPECIAL_INDICES = ("bos_index", "eos_index", "pad_index", "unk_index", "mask_index")


def resized_vocab_size(
    config: Any, current: int, new_num_tokens: int | None, pad_to_multiple_of: int | None
) -> int | None:
    """The row count `resize_token_embeddings` gives the word embeddings, or None to leave them.

    As transformers: `pad_to_multiple_of` rounds `new_num_tokens` (or the current size) up. Beyond
    it, a size that would drop one of the config's special ids, or an adaptive-softmax output
    (whose clusters `asm_cutoffs` fixes), is a ValueError.
    """
    if pad_to_multiple_of is not None:
        if not isinstance(pad_to_multiple_of, int) or isinstance(pad_to_multiple_of, bool) or pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}")
        if new_num_tokens is None:
            new_num_tokens = current
    if new_num_tokens is None:
        return None
    if not isinstance(new_num_tokens, (int, np.integer)) or isinstance(new_num_tokens, bool) or new_num_tokens < 1:
        raise ValueError(f"new_num_tokens must be a positive integer, got {new_num_tokens!r}")
    new_num_tokens = int(new_num_tokens)
    if pad_to_multiple_of is not None:
        new_num_tokens = -(-new_num_tokens // pad_to_multiple_of) * pad_to_multiple_of
    check_vocabulary_size(config, current, new_num_tokens, "resize_token_embeddings", f"new_num_tokens={new_num_tokens}")
    return new_num_tokens


def check_vocabulary_size(config: Any, current: int, rows: int, caller: str, subject: str) -> None:
    """ValueError if a word-embedding table of `rows` rows can't replace one of `current` rows: an
    adaptive-softmax output (its clusters fix the size), or a special id of the config left out."""
    if config.asm and rows != current:
        raise ValueError(
            f"{caller} can't resize an adaptive-softmax output (config.asm): its clusters are "
            f"fixed by asm_cutoffs={list(config.asm_cutoffs)} for {current} words"
        )
    dropped = [f"{name}={getattr(config, name)}" for name in SPECIAL_INDICES if getattr(config, name) >= rows]
    if dropped:
        raise ValueError(
            f"{subject} would drop the config's special ids {', '.join(dropped)}: "
            f"keep at least {max(getattr(config, name) for name in SPECIAL_INDICES) + 1} rows"
        )


def check_word_embedding_table(config: Any, current: int, shape: tuple[int, ...]) -> int:
    """The row count of a table given to `set_input_embeddings`; a ValueError names what is wrong with its shape."""
    shape = tuple(int(n) for n in shape)
    if len(shape) != 2 or shape[1] != config.emb_dim:
        raise ValueError(
            f"set_input_embeddings needs a (rows, emb_dim={config.emb_dim}) word-embedding table, got shape {shape}"
        )
    check_vocabulary_size(config, current, shape[0], "set_input_embeddings", f"a {shape[0]}-row table")
    return shape[0]


def mean_resized_rows(old: np.ndarray, added: int, standard_normal: np.ndarray) -> np.ndarray:
    """`added` new rows drawn around the mean of `old` (rows × dim) with 1e-9 × its covariance, from
    (added × dim) standard normal draws; the mean itself when that covariance is not positive
    definite. transformers' `mean_resizing`, for the Keras stack (PyTorch runs transformers' own
    torch.distributions code, so that a seed gives the same rows)."""
    old = np.asarray(old, dtype=np.float32)
    mean = old.mean(axis=0)
    centered = old - mean
    covariance = 1e-9 * (centered.T @ centered / len(old))
    try:
        lower = np.linalg.cholesky(covariance.astype(np.float64))
    except np.linalg.LinAlgError:
        return np.repeat(mean[None, :], added, axis=0)
    return (mean + standard_normal @ lower.T).astype(np.float32)
