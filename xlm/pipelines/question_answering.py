"""question-answering: answer spans in the context, as transformers' pipeline does for XLM.

transformers has no fast XLM tokenizer, so its pipeline takes its SQuAD-features path for XLM: the
context is split at whitespace into words, each word tokenised alone, the question cut to
`max_question_len` tokens, and the context tokens cut into windows of at most `max_seq_len` tokens
in all (`<s> question </s> window </s>`), window k starting at context token k × `doc_stride`.
Spans are scored from the start and end logits (softmax over the context tokens and the first
`</s>`, which SQuAD models use as the no-answer class), and each answer is the whole words its
tokens belong to. This pipeline does the same, with all windows of all questions length-grouped
into batches, so scores and answers equal transformers' (see `QuestionAnsweringPipeline`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xlm.pipelines.base import Features, Pipeline, PipelineStats, require_head, sigmoid

_BEAM_FIELDS = ("start_top_log_probs", "start_top_index", "end_top_log_probs", "end_top_index", "cls_logits")


@dataclass
class _Window:
    """One model row: which example, where its context tokens start, and per-row masks."""

    example: int
    doc_start: int  # position of the window's first context token in the row
    words: list[int]  # context word index of each of the window's tokens
    p_mask: list[int]  # 1 where no answer may start or end
    cls_index: int


def _words(context: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Whitespace words of the context with their character spans (SquadExample's split)."""
    words, spans, start = [], [], None
    for i, c in enumerate(context + " "):
        space = c in " \t\r\n" or ord(c) == 0x202F
        if space and start is not None:
            words.append(context[start:i])
            spans.append((start, i))
            start = None
        elif not space and start is None:
            start = i
    return words, spans


class QuestionAnsweringPipeline(Pipeline):
    """Answers {"score", "start", "end", "answer"} to questions about contexts.

    Works with XLMForQuestionAnsweringSimple (start/end logits; transformers' pipeline gives the
    same answers and scores) and with the SQuAD beam head XLMForQuestionAnswering (which
    transformers' pipeline cannot run): there each window gives the head's `start_n_top` starts ×
    `end_n_top` ends with their probabilities (`start_top_log_probs` and `end_top_log_probs` are
    probabilities despite their names), a span scores start × end probability, and the no-answer
    score is sigmoid(`cls_logits`) at the window's `</s>` (the SQuAD 2.0 answerability class; lowest
    over the windows).

    `start` / `end` are character offsets in the context with `context[start:end] == answer`
    (transformers' slow-tokenizer path reports as `end` the last character of the span's last word
    plus any whitespace after it). Answers of overlapping windows are not merged (as there).
    """

    task = "question-answering"

    def __init__(self, model: Any, tokenizer: Any, top_k: int = 1, doc_stride: int | None = None,
                 max_answer_len: int = 15, max_seq_len: int | None = None, max_question_len: int = 64,
                 handle_impossible_answer: bool = False, **kwargs: Any) -> None:
        require_head(model, self.task, "XLMForQuestionAnsweringSimple", "XLMForQuestionAnswering")
        self.beam = not any(name.endswith("QuestionAnsweringSimple") for name in (c.__name__ for c in type(model).__mro__))
        self.defaults = dict(top_k=top_k, doc_stride=doc_stride, max_answer_len=max_answer_len, max_seq_len=max_seq_len,
                             max_question_len=max_question_len, handle_impossible_answer=handle_impossible_answer)
        super().__init__(model, tokenizer, **kwargs)

    def __call__(self, *args: Any, question: str | Sequence[str] | None = None,
                 context: str | Sequence[str] | None = None, lang: str | Sequence[str] | None = None,
                 batch_size: int | None = None, **options: Any) -> Any:
        """Answer one question (dict, or list of dicts with top_k > 1) or a list of them (a list).

        Takes question= and context= (strings or equal-length lists), or {"question", "context"}
        dicts; options: top_k, doc_stride, max_answer_len, max_seq_len, max_question_len,
        handle_impossible_answer, align_to_words (only True: answers are whole words).
        """
        unknown = set(options) - set(self.defaults) - {"align_to_words", "topk"}
        if unknown:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(unknown))}")
        if options.pop("align_to_words", True) is not True:
            raise ValueError("align_to_words=False needs token offsets; this pipeline answers whole words only")
        if "topk" in options:
            options.setdefault("top_k", options.pop("topk"))
        opts = {**self.defaults, **options}
        if opts["top_k"] < 1:
            raise ValueError(f"top_k parameter should be >= 1 (got {opts['top_k']})")
        if opts["max_answer_len"] < 1:
            raise ValueError(f"max_answer_len parameter should be >= 1 (got {opts['max_answer_len']})")
        questions, contexts, single = self._examples(args, question, context)
        stats = PipelineStats(sentences=len(questions))
        start = time.perf_counter()
        langs = self._normalise_langs(len(questions), lang)
        lang_ids = self._lang_ids(langs)
        if not questions:
            self.stats = stats
            return []
        features, windows, word_spans = self._features(questions, contexts, langs, lang_ids, opts)
        stats.tokenize_seconds = time.perf_counter() - start
        outputs = self._execute(features, stats, start, batch_size, windows=windows)
        per_example: list[list[int]] = [[] for _ in questions]
        for row, window in enumerate(windows):
            per_example[window.example].append(row)
        results = []
        for i, rows in enumerate(per_example):
            answers = self._answers(contexts[i], word_spans[i], [(windows[r], outputs[r]) for r in rows], opts)
            results.append(answers[0] if len(answers) == 1 else answers)
        self.stats.total_seconds = time.perf_counter() - start
        return results[0] if single else results

    @staticmethod
    def _examples(args: tuple, question: Any, context: Any) -> tuple[list[str], list[str], bool]:
        if args:
            if question is not None or context is not None or len(args) > 1:
                raise ValueError("pass question= and context=, or one dict / list of dicts")
            items = args[0]
            single = isinstance(items, dict)
            items = [items] if single else list(items)
            for i, item in enumerate(items):
                if not isinstance(item, dict) or "question" not in item or "context" not in item:
                    raise TypeError(f"input {i} must be a dict with 'question' and 'context'")
            questions, contexts = [it["question"] for it in items], [it["context"] for it in items]
        else:
            if question is None or context is None:
                raise ValueError("question-answering needs both question= and context=")
            single = isinstance(question, str) and isinstance(context, str)
            questions = [question] if isinstance(question, str) else list(question)
            contexts = [context] if isinstance(context, str) else list(context)
            if len(questions) == 1 and len(contexts) > 1:
                questions = questions * len(contexts)
            if len(contexts) == 1 and len(questions) > 1:
                contexts = contexts * len(questions)
            if len(questions) != len(contexts):
                raise ValueError(f"{len(questions)} questions for {len(contexts)} contexts; give as many of each")
        for i, (q, c) in enumerate(zip(questions, contexts)):
            if not isinstance(q, str) or not isinstance(c, str):
                raise TypeError(f"question and context {i} must be strings")
            if not q.strip() or not c.strip():
                raise ValueError(f"question and context {i} must not be empty")
        return questions, contexts, single and len(questions) == 1

    def _features(self, questions, contexts, langs, lang_ids, opts):
        """Every example's windows as model rows (transformers' squad_convert_examples_to_features)."""
        tok = self.tokenizer
        max_seq_len = opts["max_seq_len"] or min(getattr(tok, "model_max_length", 384) or 384, 384)
        doc_stride = opts["doc_stride"] if opts["doc_stride"] is not None else min(max_seq_len // 2, 128)
        if doc_stride > max_seq_len:
            raise ValueError(f"`doc_stride` ({doc_stride}) is larger than `max_seq_len` ({max_seq_len})")
        if max_seq_len > self.config.max_position_embeddings:
            raise ValueError(f"max_seq_len {max_seq_len} exceeds max_position_embeddings = {self.config.max_position_embeddings}")
        word_lists, word_spans = zip(*(_words(c) for c in contexts))
        flat = [w for words in word_lists for w in words]
        flat_langs = [lang for lang, words in zip(langs, word_lists) for _ in words]
        word_ids = self._encode(flat, flat_langs, add_special_tokens=False, truncate=False)["input_ids"] if flat else []
        question_ids = self._encode(questions, langs, add_special_tokens=False, truncate=False)["input_ids"]
        pair_added = tok.num_special_tokens_to_add(pair=True)
        single_added = tok.num_special_tokens_to_add(pair=False)
        special_ids = set(getattr(tok, "all_special_ids", []) or [])
        cls_id = tok.cls_token_id
        ids, types, langs_out, owners, windows = [], [], [], [], []
        position = 0
        for example, words in enumerate(word_lists):
            doc_tokens, doc_words = [], []
            for w in range(len(words)):
                doc_tokens += word_ids[position + w]
                doc_words += [w] * len(word_ids[position + w])
            position += len(words)
            query = question_ids[example][:opts["max_question_len"]]
            room = max_seq_len - len(query) - pair_added
            if room <= 0:
                raise ValueError(f"question {example} leaves no room for context within max_seq_len = {max_seq_len}")
            k = 0
            while True:
                lo = k * doc_stride
                window = doc_tokens[lo : lo + room]
                row = tok.build_inputs_with_special_tokens(query, window)
                doc_start = len(query) + single_added
                cls_index = row.index(cls_id)
                p_mask = [1] * len(row)
                for j in range(doc_start, doc_start + len(window)):
                    p_mask[j] = int(row[j] in special_ids)
                p_mask[cls_index] = 0
                ids.append(row)
                types.append(tok.create_token_type_ids_from_sequences(query, window))
                langs_out.append(lang_ids[example])
                owners.append(example)
                windows.append(_Window(example, doc_start, doc_words[lo : lo + len(window)], p_mask, cls_index))
                k += 1
                if lo + room >= len(doc_tokens) or k * doc_stride >= len(doc_tokens):
                    break
        return Features(ids, types, langs_out, owners), windows, word_spans

    def _process(self, batch, rows, ids, results, windows=None) -> None:
        width = batch["input_ids"].shape[1]
        if self.beam:
            p_mask = np.ones((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                p_mask[r, : len(windows[i].p_mask)] = windows[i].p_mask
            cls_index = np.array([[windows[i].cls_index] for i in rows], dtype=np.int64)
            out = self._runner.outputs({**batch, "p_mask": p_mask, "cls_index": cls_index}, _BEAM_FIELDS)
            for r, i in enumerate(rows):
                results[i] = {k: out[k][r] for k in _BEAM_FIELDS}
        else:
            out = self._runner.outputs(batch, ["start_logits", "end_logits"])
            for r, i in enumerate(rows):
                n = len(ids[i])
                results[i] = {"start": out["start_logits"][r, :n], "end": out["end_logits"][r, :n]}

    def _answers(self, context: str, spans: list[tuple[int, int]], windows: list, opts: dict) -> list[dict]:
        top_k, max_len = opts["top_k"], opts["max_answer_len"]
        pre_top_k = top_k * 2 + 10
        answers, null_score = [], 1000000.0
        for window, out in windows:
            allowed = np.asarray(window.p_mask) == 0
            if self.beam:
                candidates = self._beam_spans(window, out, allowed, max_len)
                null_score = min(null_score, float(sigmoid(out["cls_logits"])))
            else:
                candidates, null = _simple_spans(out["start"], out["end"], allowed, pre_top_k, max_len)
                null_score = min(null_score, null)
            for s, e, score in candidates:
                first, last = s - window.doc_start, e - window.doc_start
                if not (0 <= first < len(window.words) and 0 <= last < len(window.words)):
                    continue  # the </s> no-answer class: no words to give (transformers fails here)
                lo, hi = spans[window.words[first]][0], spans[window.words[last]][1]
                answers.append({"score": score, "start": lo, "end": hi, "answer": context[lo:hi]})
        if opts["handle_impossible_answer"]:
            answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
        return sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]

    def _beam_spans(self, window: _Window, out: dict, allowed: np.ndarray, max_len: int) -> list:
        start_top, start_index = out["start_top_log_probs"], out["start_top_index"]
        n_top = len(start_top)
        end_top = out["end_top_log_probs"].reshape(-1, n_top)  # (end_n_top, start_n_top)
        end_index = out["end_top_index"].reshape(-1, n_top)
        spans = []
        for i in range(n_top):
            s = int(start_index[i])
            for j in range(end_top.shape[0]):
                e = int(end_index[j, i])
                if s < len(allowed) and e < len(allowed) and allowed[s] and allowed[e] and s <= e < s + max_len:
                    spans.append((s, e, float(start_top[i] * end_top[j, i])))
        return spans


def _simple_spans(start: np.ndarray, end: np.ndarray, allowed: np.ndarray, top_k: int, max_len: int) -> tuple[list, float]:
    """transformers' select_starts_ends + decode_spans on one window: the top_k (start, end, score)
    spans with start <= end < start + max_len inside the allowed tokens, and the null score."""
    start = np.where(allowed, start, -10000.0)
    end = np.where(allowed, end, -10000.0)
    start = np.exp(start - start.max())
    start = start / start.sum()
    end = np.exp(end - end.max())
    end = end / end.sum()
    null = float(start[0] * end[0])
    start[0] = end[0] = 0.0
    candidates = np.tril(np.triu(np.outer(start, end)), max_len - 1)
    flat = candidates.flatten()
    if top_k == 1:
        order = [int(np.argmax(flat))]
    elif len(flat) < top_k:
        order = np.argsort(-flat)
    else:
        idx = np.argpartition(-flat, top_k)[0:top_k]
        order = idx[np.argsort(-flat[idx])]
    starts, ends = np.unravel_index(order, candidates.shape)
    keep = allowed[starts] & allowed[ends]
    return [(int(s), int(e), float(candidates[s, e])) for s, e in zip(starts[keep], ends[keep])], null
