"""Framework-free pieces of the model stacks: the sinusoidal table and input validation.

Both stacks call the same checks with plain Python numbers, so they raise the same messages
before any kernel runs (TensorFlow's embedding lookup on GPU silently returns zeros for
out-of-range ids, so the check cannot be left to the lookup).
"""

from __future__ import annotations

from collections.abc import Sequence

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
