"""text-generation: continue prompts with the model's `generate()`, as transformers' pipeline."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from xlm.pipelines.base import Pipeline, PipelineStats, require_head


class TextGenerationPipeline(Pipeline):
    """Continue each prompt with `model.generate(...)`, returning transformers' records.

    Prompts are tokenised without special tokens (transformers' default; `add_special_tokens=True`
    changes it), grouped into batches of prompts of equal token length (so no prompt is padded and
    each batch row generates exactly what that prompt alone would), and every other keyword
    (max_new_tokens, do_sample, top_k, num_beams, num_return_sequences, eos_token_id, ...) goes to
    `generate()` as it is. Per prompt: a list of {"generated_text"} (the prompt plus its
    continuation; only the continuation with `return_full_text=False`) or {"generated_token_ids"}
    with `return_tensors=True`. One string in gives that list; a list of prompts, a list of lists.
    """

    task = "text-generation"

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        require_head(model, self.task, "XLMWithLMHeadModel")
        generate_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k not in _PIPELINE_OPTIONS}
        self.generate_kwargs = generate_kwargs
        super().__init__(model, tokenizer, **kwargs)

    def __call__(
        self,
        text_inputs: str | Sequence[str],
        lang: str | Sequence[str] | None = None,
        return_full_text: bool | None = None,
        return_tensors: bool | None = None,
        return_text: bool | None = None,
        clean_up_tokenization_spaces: bool = True,
        skip_special_tokens: bool = True,
        prefix: str = "",
        add_special_tokens: bool = False,
        batch_size: int | None = None,
        **generate_kwargs: Any,
    ) -> list:
        """Continue one prompt (a list of records) or each of a list of prompts (a list of lists)."""
        if return_full_text is not None and return_tensors:
            raise ValueError("return_full_text and return_tensors are mutually exclusive")
        if return_full_text is not None and return_text is not None:
            raise ValueError("return_full_text and return_text are mutually exclusive")
        generate_kwargs = {**self.generate_kwargs, **generate_kwargs}
        texts, single = self._texts(text_inputs)
        stats = PipelineStats(sentences=len(texts))
        start = time.perf_counter()
        langs = self._normalise_langs(len(texts), lang)
        lang_ids = self._lang_ids(langs)
        if not texts:
            self.stats = stats
            return []
        ids = self._encode([prefix + t for t in texts], langs, add_special_tokens=add_special_tokens)["input_ids"]
        for i, seq in enumerate(ids):
            if not seq:
                raise ValueError(f"prompt {i} has no tokens; text-generation needs a non-empty prompt")
        self._check_length(ids)
        stats.tokenize_seconds = time.perf_counter() - start
        prefix_length = len(self._encode([prefix], langs[:1], add_special_tokens=add_special_tokens)["input_ids"][0]) if prefix else 0
        if prefix_length and "max_length" in generate_kwargs:  # transformers counts max_length past the prefix
            generate_kwargs["max_length"] += prefix_length
        batch_size = self.batch_size if batch_size is None else batch_size
        groups: dict[tuple[int, int | None], list[int]] = {}
        for i, seq in enumerate(ids):
            groups.setdefault((len(seq), lang_ids[i]), []).append(i)
        sequences: list[Any] = [None] * len(texts)
        for (length, lang_id), members in sorted(groups.items(), key=lambda item: item[0][0]):
            for lo in range(0, len(members), batch_size):
                rows = members[lo : lo + batch_size]
                tick = time.perf_counter()
                out = self._generate(np.array([ids[i] for i in rows], dtype=np.int64), lang_id, generate_kwargs)
                stats.model_seconds += time.perf_counter() - tick
                stats.batches += 1
                stats.real_tokens += length * len(rows)
                stats.padded_tokens += length * len(rows)
                per_prompt = out.shape[0] // len(rows)
                for r, i in enumerate(rows):
                    sequences[i] = out[r * per_prompt : (r + 1) * per_prompt]
        full = return_full_text if return_full_text is not None else (True if return_text is None else bool(return_text))
        results = []
        for text, prompt_ids, generated in zip(texts, ids, sequences):
            records = []
            for sequence in generated.tolist():
                sequence = _strip_padding(sequence, len(prompt_ids), self.pad_id)
                if return_tensors:
                    records.append({"generated_token_ids": sequence})
                    continue
                decode = dict(skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=clean_up_tokenization_spaces)
                decoded = self.tokenizer.decode(sequence, **decode)
                new_text = decoded[len(self.tokenizer.decode(prompt_ids, **decode)):]
                records.append({"generated_text": text + new_text if full else new_text})
            results.append(records)
        stats.total_seconds = time.perf_counter() - start
        self.stats = stats
        return results[0] if single else results

    def _generate(self, input_ids: np.ndarray, lang_id: int | None, generate_kwargs: dict[str, Any]) -> np.ndarray:
        kwargs = dict(generate_kwargs)
        if lang_id is not None and "langs" not in kwargs:
            kwargs["langs"] = lang_id
        if self.framework == "torch":
            import torch

            device = self._runner.device
            with torch.inference_mode():
                out = self.model.generate(torch.from_numpy(input_ids).to(device), **kwargs)
            sequences = getattr(out, "sequences", out)
            return sequences.cpu().numpy()
        with self._runner._scope():
            out = self.model.generate(input_ids.astype(np.int32), **kwargs)
        import keras

        return np.asarray(keras.ops.convert_to_numpy(getattr(out, "sequences", out)))


def _strip_padding(sequence: list[int], prompt_length: int, pad_id: int) -> list[int]:
    """A generated row without the padding generate() puts after a sequence that stopped early."""
    end = len(sequence)
    while end > prompt_length and sequence[end - 1] == pad_id:
        end -= 1
    return sequence[:end]


_PIPELINE_OPTIONS = {"batch_size", "max_tokens", "max_padding", "batch_overhead", "lang", "truncation", "keras_mode", "device"}
