"""Truncation and padding of encoded sequences, with transformers' rules for `padding=`, `truncation=`
and `max_length=`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

from xlm.tokenizer.encoding import _PADDED_KEYS, BatchEncoding, _to_list

#: transformers' "no maximum length" value of `model_max_length`.
VERY_LARGE_INTEGER = int(1e30)
_LARGE_INTEGER = int(1e20)


class PaddingMixin:
    """Truncation and padding for `XLMTokenizer` (which supplies the special-token layout and ids,
    `model_max_length`, `padding_side` and `truncation_side`)."""


    def _strategies(
        self, padding: Any, truncation: Any, max_length: Optional[int], pad_to_multiple_of: Optional[int]
    ) -> tuple[str, str, Optional[int]]:
        """transformers' rules for padding / truncation / max_length defaults."""
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"
        padding = getattr(padding, "value", padding)
        truncation = getattr(truncation, "value", truncation)
        if padding is True:
            padding = "longest"
        elif padding is False or padding is None:
            padding = "do_not_pad"
        if padding not in ("longest", "max_length", "do_not_pad"):
            raise ValueError(f"unknown padding {padding!r}; use True/'longest', 'max_length' or False")
        if truncation is True:
            truncation = "longest_first"
        elif truncation is False or truncation is None:
            truncation = "do_not_truncate"
        if truncation not in ("longest_first", "only_first", "only_second", "do_not_truncate"):
            raise ValueError(
                f"unknown truncation {truncation!r}; use True/'longest_first', 'only_first', 'only_second' or False"
            )
        if max_length is None:
            limited = self.model_max_length <= _LARGE_INTEGER
            if padding == "max_length":
                if limited:
                    max_length = self.model_max_length
                else:
                    padding = "do_not_pad"
            if truncation != "do_not_truncate":
                if limited:
                    max_length = self.model_max_length
                else:
                    truncation = "do_not_truncate"
        if padding != "do_not_pad" and (self.pad_token is None or self.pad_token_id is None or self.pad_token_id < 0):
            raise ValueError("asked to pad, but the tokenizer has no pad_token")
        if (
            truncation != "do_not_truncate"
            and padding != "do_not_pad"
            and pad_to_multiple_of is not None
            and max_length is not None
            and max_length % pad_to_multiple_of != 0
        ):
            raise ValueError(
                f"truncation length {max_length} is not a multiple of pad_to_multiple_of {pad_to_multiple_of}"
            )
        return padding, truncation, max_length

    def _truncate(
        self, ids: list[int], pair_ids: Optional[list[int]], remove: int, strategy: str
    ) -> tuple[list[int], Optional[list[int]]]:
        """Drop `remove` tokens as transformers' `truncate_sequences` does."""
        if remove <= 0:
            return ids, pair_ids
        right = self.truncation_side == "right"
        if strategy == "only_first" or (strategy == "longest_first" and pair_ids is None):
            if len(ids) > remove:
                ids = ids[:-remove] if right else ids[remove:]
            # else: transformers logs an error and leaves the ids as they are
        elif strategy == "longest_first":
            len_ids, len_pair = len(ids), len(pair_ids)
            first_remove = min(abs(len_pair - len_ids), remove)
            second_remove = remove - first_remove
            if len_ids > len_pair:
                ids_cut = first_remove + second_remove // 2
                pair_cut = second_remove - second_remove // 2
            else:
                ids_cut = second_remove // 2
                pair_cut = first_remove + second_remove - second_remove // 2
            if right:
                ids = ids[:-ids_cut] if ids_cut > 0 else ids
                pair_ids = pair_ids[:-pair_cut] if pair_cut > 0 else pair_ids
            else:
                ids, pair_ids = ids[ids_cut:], pair_ids[pair_cut:]
        elif strategy == "only_second" and pair_ids is not None:
            if len(pair_ids) > remove:
                pair_ids = pair_ids[:-remove] if right else pair_ids[remove:]
        return ids, pair_ids

    def _prepare(
        self,
        ids: list[int],
        pair_ids: Optional[list[int]],
        add_special_tokens: bool,
        truncation: str,
        max_length: Optional[int],
        return_token_type_ids: bool,
        return_special_tokens_mask: bool,
        langs: Optional[tuple[int, int]],
        return_length: bool = False,
    ) -> dict[str, Any]:
        pair = pair_ids is not None
        total = len(ids) + (len(pair_ids) if pair else 0) + (self.num_special_tokens_to_add(pair) if add_special_tokens else 0)
        if truncation != "do_not_truncate" and max_length and total > max_length:
            ids, pair_ids = self._truncate(ids, pair_ids, total - max_length, truncation)
        if add_special_tokens:
            sequence = self.build_inputs_with_special_tokens(ids, pair_ids)
            first_len = len(ids) + 2
        else:
            sequence = ids + pair_ids if pair else list(ids)
            first_len = len(ids)
        out = {"input_ids": sequence}
        if return_token_type_ids:
            if add_special_tokens:
                out["token_type_ids"] = self.create_token_type_ids_from_sequences(ids, pair_ids)
            else:
                out["token_type_ids"] = [0] * len(sequence)
        if return_special_tokens_mask:
            if add_special_tokens:
                out["special_tokens_mask"] = self.get_special_tokens_mask(ids, pair_ids)
            else:
                out["special_tokens_mask"] = [0] * len(sequence)
        if return_length:  # before padding, as transformers does for batches
            out["length"] = len(sequence)
        if langs is not None:
            out["langs"] = [langs[0]] * first_len + [langs[1]] * (len(sequence) - first_len)
        return out

    def _pad_one(
        self,
        encoded: dict[str, list[int]],
        padding: str,
        max_length: Optional[int],
        pad_to_multiple_of: Optional[int],
        padding_side: str,
        return_attention_mask: bool,
    ) -> dict[str, list[int]]:
        length = len(encoded["input_ids"])
        if padding == "longest":
            max_length = length
        if max_length is not None and pad_to_multiple_of is not None and max_length % pad_to_multiple_of:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        if return_attention_mask and "attention_mask" not in encoded:
            encoded["attention_mask"] = [1] * length
        missing = (max_length - length) if (padding != "do_not_pad" and max_length is not None) else 0
        if missing <= 0:
            return encoded
        fills = {
            "input_ids": self.pad_token_id,
            "token_type_ids": self.pad_token_type_id,
            "attention_mask": 0,
            "special_tokens_mask": 1,
        }
        for key, value in encoded.items():
            # as transformers: other keys ("length", labels) are left alone; 0 is a real label
            if not isinstance(value, list) or key not in _PADDED_KEYS:
                continue
            fill = fills.get(key, value[-1] if key == "langs" and value else 0)
            encoded[key] = value + [fill] * missing if padding_side == "right" else [fill] * missing + value
        return encoded

    def pad(
        self,
        encoded_inputs: Union[Mapping[str, Any], Sequence[Mapping[str, Any]]],
        padding: Union[bool, str] = True,
        max_length: Optional[int] = None,
        pad_to_multiple_of: Optional[int] = None,
        padding_side: Optional[str] = None,
        return_attention_mask: Optional[bool] = None,
        return_tensors: Optional[str] = None,
    ) -> BatchEncoding:
        """Pad a batch (a dict of lists of lists, or a list of dicts) to one length."""
        if isinstance(encoded_inputs, (list, tuple)):
            if not encoded_inputs:
                return BatchEncoding()
            encoded_inputs = {k: [e[k] for e in encoded_inputs] for k in encoded_inputs[0]}
        batch = {k: [_to_list(row) for row in v] for k, v in encoded_inputs.items()}
        if "input_ids" not in batch:
            raise ValueError(f"pad needs 'input_ids'; got keys {list(batch)}")
        if return_attention_mask is None:
            return_attention_mask = True
        padding, _, max_length = self._strategies(padding, False, max_length, pad_to_multiple_of)
        out = self._pad_batch(batch, padding, max_length, pad_to_multiple_of, padding_side or self.padding_side,
                              return_attention_mask)
        return BatchEncoding(out).convert_to_tensors(return_tensors)

    def _pad_batch(
        self,
        batch: dict[str, list[list[int]]],
        padding: str,
        max_length: Optional[int],
        pad_to_multiple_of: Optional[int],
        padding_side: str,
        return_attention_mask: bool,
    ) -> dict[str, list[list[int]]]:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        if padding == "longest":
            max_length = max((len(r["input_ids"]) for r in rows), default=0)
            padding = "max_length"
        rows = [
            self._pad_one(r, padding, max_length, pad_to_multiple_of, padding_side, return_attention_mask) for r in rows
        ]
        keys = list(rows[0]) if rows else list(batch) + (["attention_mask"] if return_attention_mask else [])
        return {k: [r[k] for r in rows] for k in keys}
