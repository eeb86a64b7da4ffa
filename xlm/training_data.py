"""Training data for XLM: corpus reading, CLM / MLM / TLM batches, masking, a sentence-pair task.

Backend-neutral (numpy only): every batch is a dict of int64 numpy arrays that both training
modules (`xlm.torch_backend.training`, `xlm.tf_backend.training`) feed to their models as is.

Layouts, as in facebookresearch/XLM:

- CLM / MLM: the sentences of one language are joined into one stream, each followed by `</s>`
  (`</s> s1 </s> s2 </s> ...`), and the stream is cut into rows of `bptt` tokens. A batch holds
  rows of one language; `langs` is filled with that language's id. CLM rows carry their labels
  (the next token: the models do not shift labels); MLM rows get theirs from masking.
- TLM: a parallel pair is concatenated as `</s> A </s> </s> B </s>`, positions restart at 0 for
  the second sentence, `langs` holds each segment's language id; rows are right-padded.
- Sentence-pair classification ("is B the translation of A"): `<s> A </s> B </s>` (the tokenizer's
  pair layout), per-segment `langs`, label 1 for a translation and 0 for a shuffled negative.

Every batch has the keys `input_ids`, `attention_mask`, `langs`, `position_ids` and `labels`
(token labels with -100 where nothing is predicted, or one class label per row).

`TrainingBatches` turns a set of examples into an endless, deterministic sequence of batches: the
batch of global step `s` depends only on the seed and `s` (epoch `s // len(batches)` shuffles the
examples with its own seeded generator and draws fresh MLM masks), so training can resume at any
step and every process of a distributed run can build the same global batch.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "IGNORE_INDEX",
    "TokenIds",
    "MaskingConfig",
    "ParallelCorpus",
    "read_parallel_corpus",
    "default_corpus_path",
    "make_lang2id",
    "encode_sentences",
    "pack_stream",
    "stream_examples",
    "translation_pair_examples",
    "pair_classification_examples",
    "mask_tokens",
    "collate",
    "ExampleGroup",
    "TrainingBatches",
    "shard_batch",
    "count_targets",
    "pretraining_batches",
    "classification_examples",
    "classification_batches",
    "batches_from",
    "unigram_baseline",
    "warmup_linear_decay",
    "TrainingResult",
]

#: Label value of positions that are not predicted (the models' cross entropy ignores it).
IGNORE_INDEX = -100

BATCH_KEYS = ("input_ids", "attention_mask", "langs", "position_ids", "labels")


# --- token ids ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenIds:
    """The special token ids that batch building and masking need.

    Args:
        vocab_size: size of the vocabulary; random replacement tokens are drawn below it.
        bos, eos, pad, unk, mask: ids of `<s>`, `</s>`, `<pad>`, `<unk>` and the mask token
            (`<special1>`, the config's `mask_index`).
        n_special: ids below this are special tokens (XLM vocabularies start with `<s>`, `</s>`,
            `<pad>`, `<unk>`, `<special0>`..`<special9>`: 14 ids). They are never masked and never
            drawn as random replacements.
    """

    vocab_size: int
    bos: int = 0
    eos: int = 1
    pad: int = 2
    unk: int = 3
    mask: int = 5
    n_special: int = 14

    def __post_init__(self) -> None:
        for name in ("bos", "eos", "pad", "unk", "mask"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ValueError(f"{name} id {value} is outside the vocabulary [0, {self.vocab_size})")
        if not 0 <= self.n_special < self.vocab_size:
            raise ValueError(
                f"n_special={self.n_special} leaves no regular token in a vocabulary of {self.vocab_size}"
            )

    @classmethod
    def from_config(cls, config: Any, n_special: int = 14) -> "TokenIds":
        """The ids of an XLMConfig (bos/eos/pad/unk/mask_index, vocab_size)."""
        return cls(
            vocab_size=config.vocab_size,
            bos=config.bos_index,
            eos=config.eos_index,
            pad=config.pad_index,
            unk=config.unk_index,
            mask=config.mask_index,
            n_special=min(n_special, config.vocab_size - 1),
        )

    @property
    def special_ids(self) -> np.ndarray:
        """Sorted ids that are never masked: ids below n_special plus bos/eos/pad/unk/mask."""
        ids = set(range(self.n_special)) | {self.bos, self.eos, self.pad, self.unk, self.mask}
        return np.array(sorted(ids), dtype=np.int64)

    @property
    def regular_ids(self) -> np.ndarray:
        """Ids that masking may draw as random replacements."""
        keep = np.ones(self.vocab_size, dtype=bool)
        keep[self.special_ids] = False
        return np.flatnonzero(keep).astype(np.int64)


@dataclass(frozen=True)
class MaskingConfig:
    """MLM masking rates: `probability` of the non-special tokens are predicted; of those,
    `mask_fraction` become the mask token, `random_fraction` a random regular token, and the rest
    stay unchanged (BERT / XLM: 15 %, 80 % / 10 % / 10 %)."""

    probability: float = 0.15
    mask_fraction: float = 0.8
    random_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.probability <= 1.0:
            raise ValueError(f"masking probability must be in (0, 1], got {self.probability}")
        if self.mask_fraction < 0 or self.random_fraction < 0 or self.mask_fraction + self.random_fraction > 1.0:
            raise ValueError(
                "mask_fraction and random_fraction must be non-negative with a sum of at most 1, got "
                f"{self.mask_fraction} and {self.random_fraction}"
            )


# --- corpus -------------------------------------------------------------------------------------
@dataclass
class ParallelCorpus:
    """Aligned segments: `texts[lang][i]` are translations of each other for every i."""

    pages: list[str]
    ids: list[str]
    texts: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def languages(self) -> list[str]:
        """The language codes (columns), in file order."""
        return list(self.texts)

    def select(self, indices: Iterable[int]) -> "ParallelCorpus":
        """A corpus of the segments at `indices`, in that order."""
        idx = list(indices)
        return ParallelCorpus(
            pages=[self.pages[i] for i in idx],
            ids=[self.ids[i] for i in idx],
            texts={lang: [col[i] for i in idx] for lang, col in self.texts.items()},
        )

    def split(self, held_out_fraction: float, seed: int = 0) -> tuple["ParallelCorpus", "ParallelCorpus"]:
        """(train, held_out) with whole help pages on one side, so no page leaks into both."""
        if not 0.0 <= held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
        held, train = [], []
        for i, page in enumerate(self.pages):
            # crc32 of the page name: stable across runs and Python versions (hash() is salted).
            bucket = zlib.crc32(f"{seed}:{page}".encode()) / 2**32
            (held if bucket < held_out_fraction else train).append(i)
        return self.select(train), self.select(held)


def default_corpus_path() -> str:
    """The corpus slice bundled with the package (LibreOffice help, en/fr/de, MPL-2.0)."""
    directory = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "lohelp")
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            if name.endswith(".tsv.gz") or name.endswith(".tsv"):
                return os.path.join(directory, name)
    raise FileNotFoundError(f"no .tsv or .tsv.gz corpus in {directory}")


def read_parallel_corpus(
    path: str | os.PathLike,
    languages: Sequence[str] | None = None,
    limit: int | None = None,
) -> ParallelCorpus:
    """Read an aligned TSV corpus (gzipped or not) with the header `page id <lang> <lang> ...`.

    `languages` keeps only those columns (all language columns by default); rows where a kept
    language is empty are skipped; `limit` stops after that many kept rows.
    """
    path = os.fspath(path)
    raw = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    with raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path} is empty: expected a header `page id <lang> ...`") from None
        if header[:2] != ["page", "id"] or len(header) < 3:
            raise ValueError(f"{path}: header must be `page id <lang> ...`, got {header}")
        available = header[2:]
        wanted = list(available if languages is None else languages)
        missing = [lang for lang in wanted if lang not in available]
        if missing:
            raise ValueError(f"{path} has no column for {missing}; its languages are {available}")
        columns = [header.index(lang) for lang in wanted]
        corpus = ParallelCorpus(pages=[], ids=[], texts={lang: [] for lang in wanted})
        for line_number, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ValueError(f"{path}:{line_number} has {len(row)} fields, expected {len(header)}")
            values = [row[c].strip() for c in columns]
            if not all(values):
                continue
            corpus.pages.append(row[0])
            corpus.ids.append(row[1])
            for lang, value in zip(wanted, values):
                corpus.texts[lang].append(value)
            if limit is not None and len(corpus.ids) >= limit:
                break
    return corpus


def make_lang2id(languages: Iterable[str]) -> dict[str, int]:
    """Language ids in sorted order of the codes, as facebookresearch/XLM numbers them."""
    return {lang: i for i, lang in enumerate(sorted(set(languages)))}


def encode_sentences(tokenizer: Any, sentences: Sequence[str], lang: str | None = None) -> list[np.ndarray]:
    """Token ids (no special tokens) of each sentence, with that language's tokenizer rules.

    `tokenizer` is an XLMTokenizer (batch call with `lang=`); a tokenizer without `lang` support
    (transformers') is called without it.
    """
    sentences = list(sentences)
    if not sentences:
        return []
    try:
        encoded = tokenizer(sentences, add_special_tokens=False, lang=lang)["input_ids"]
    except TypeError:
        encoded = tokenizer(sentences, add_special_tokens=False)["input_ids"]
    return [np.asarray(ids, dtype=np.int64) for ids in encoded]


# --- examples -----------------------------------------------------------------------------------
def pack_stream(sentences: Iterable[Sequence[int]], eos: int, length: int, stride: int | None = None) -> np.ndarray:
    """Join sentences into one stream `</s> s1 </s> s2 </s> ...` and cut it into rows.

    Rows hold `length` tokens and start every `stride` tokens (`length` by default: rows tile the
    stream; CLM uses length bptt + 1 with stride bptt so consecutive rows share one token). The
    incomplete tail is dropped. Returns an int64 array (n_rows, length).
    """
    if length < 2:
        raise ValueError(f"stream rows need at least 2 tokens, got length={length}")
    stride = length if stride is None else stride
    pieces = [np.array([eos], dtype=np.int64)]
    for sentence in sentences:
        s = np.asarray(sentence, dtype=np.int64)
        if s.size:
            pieces.append(s)
            pieces.append(np.array([eos], dtype=np.int64))
    stream = np.concatenate(pieces)
    n_rows = 0 if stream.size < length else (stream.size - length) // stride + 1
    if n_rows == 0:
        return np.zeros((0, length), dtype=np.int64)
    starts = np.arange(n_rows) * stride
    return stream[starts[:, None] + np.arange(length)[None, :]]


def _example(input_ids: np.ndarray, langs: np.ndarray, position_ids: np.ndarray, labels: Any = None) -> dict:
    example = {"input_ids": input_ids, "langs": langs, "position_ids": position_ids}
    if labels is not None:
        example["labels"] = labels
    return example


def stream_examples(
    sentences: Iterable[Sequence[int]],
    lang_id: int,
    ids: TokenIds,
    bptt: int = 256,
    causal: bool = False,
) -> list[dict]:
    """Monolingual rows of `bptt` tokens for MLM (unlabelled: masking labels them) or, with
    `causal`, CLM rows whose labels are the next tokens."""
    if causal:
        rows = pack_stream(sentences, ids.eos, bptt + 1, stride=bptt)
    else:
        rows = pack_stream(sentences, ids.eos, bptt)
    positions = np.arange(bptt, dtype=np.int64)
    langs = np.full(bptt, lang_id, dtype=np.int64)
    if causal:
        return [_example(row[:-1].copy(), langs, positions, row[1:].copy()) for row in rows]
    return [_example(row.copy(), langs, positions) for row in rows]


def _truncate_pair(a: np.ndarray, b: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Shorten the longer of two sentences, one token at a time, until len(a) + len(b) <= budget."""
    la, lb = len(a), len(b)
    while la + lb > budget:
        if la >= lb:
            la -= 1
        else:
            lb -= 1
    return a[:la], b[:lb]


def translation_pair_examples(
    source: Sequence[Sequence[int]],
    target: Sequence[Sequence[int]],
    source_lang_id: int,
    target_lang_id: int,
    ids: TokenIds,
    max_length: int = 256,
) -> list[dict]:
    """TLM rows `</s> A </s> </s> B </s>`: positions restart at 0 for B, `langs` per segment.

    Pairs longer than `max_length` lose tokens from the end of their longer sentence; pairs with an
    empty side are skipped.
    """
    if len(source) != len(target):
        raise ValueError(f"parallel data must align: {len(source)} source and {len(target)} target sentences")
    if max_length < 6:
        raise ValueError(f"max_length={max_length} leaves no room for a TLM pair (4 separators)")
    eos = np.array([ids.eos], dtype=np.int64)
    examples = []
    for a, b in zip(source, target):
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        if a.size == 0 or b.size == 0:
            continue
        a, b = _truncate_pair(a, b, max_length - 4)
        first = np.concatenate([eos, a, eos])
        second = np.concatenate([eos, b, eos])
        examples.append(
            _example(
                np.concatenate([first, second]),
                np.concatenate([np.full(first.size, source_lang_id), np.full(second.size, target_lang_id)]).astype(np.int64),
                np.concatenate([np.arange(first.size), np.arange(second.size)]).astype(np.int64),
            )
        )
    return examples


def pair_classification_examples(
    source: Sequence[Sequence[int]],
    target: Sequence[Sequence[int]],
    source_lang_id: int,
    target_lang_id: int,
    ids: TokenIds,
    seed: int = 0,
    max_length: int = 128,
) -> list[dict]:
    """"Is B the translation of A": for every pair, a positive `<s> A </s> B </s>` (label 1) and a
    negative with B taken from another, randomly chosen pair (label 0), in a seeded random order."""
    if len(source) != len(target):
        raise ValueError(f"parallel data must align: {len(source)} source and {len(target)} target sentences")
    if len(source) < 2:
        raise ValueError("the pair task needs at least 2 sentence pairs to draw negatives from")
    if max_length < 5:
        raise ValueError(f"max_length={max_length} leaves no room for a sentence pair (3 special tokens)")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7A1]))
    n = len(source)
    # A random derangement: a shift by 1..n-1 of a random permutation never maps i to itself.
    order = rng.permutation(n)
    shift = int(rng.integers(1, n))
    other = np.empty(n, dtype=np.int64)
    other[order] = order[(np.arange(n) + shift) % n]
    bos, eos = np.array([ids.bos]), np.array([ids.eos])
    examples = []
    for i in range(n):
        for j, label in ((i, 1), (int(other[i]), 0)):
            a, b = np.asarray(source[i], dtype=np.int64), np.asarray(target[j], dtype=np.int64)
            a, b = _truncate_pair(a, b, max_length - 3)
            first = np.concatenate([bos, a, eos])
            second = np.concatenate([b, eos])
            input_ids = np.concatenate([first, second]).astype(np.int64)
            langs = np.concatenate([np.full(first.size, source_lang_id), np.full(second.size, target_lang_id)])
            examples.append(
                _example(input_ids, langs.astype(np.int64), np.arange(input_ids.size, dtype=np.int64), np.int64(label))
            )
    rng.shuffle(examples)
    return examples


# --- masking and collation ----------------------------------------------------------------------
def mask_tokens(
    input_ids: np.ndarray,
    rng: np.random.Generator,
    ids: TokenIds,
    masking: MaskingConfig = MaskingConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """MLM corruption of `input_ids`: returns (corrupted ids, labels).

    Each non-special token (padding is special) is chosen with `masking.probability`; a chosen
    token becomes the mask token, a random regular token, or stays, in the configured proportions.
    Labels hold the original id at chosen positions and -100 everywhere else. At least one token is
    chosen when any is eligible, so a batch never has an empty loss.
    """
    input_ids = np.asarray(input_ids, dtype=np.int64)
    eligible = ~np.isin(input_ids, ids.special_ids)
    chosen = (rng.random(input_ids.shape) < masking.probability) & eligible
    if not chosen.any() and eligible.any():
        flat = np.flatnonzero(eligible)
        chosen.flat[flat[rng.integers(flat.size)]] = True
    action = rng.random(input_ids.shape)
    to_mask = chosen & (action < masking.mask_fraction)
    to_random = chosen & (action >= masking.mask_fraction) & (action < masking.mask_fraction + masking.random_fraction)
    regular = ids.regular_ids
    corrupted = input_ids.copy()
    corrupted[to_mask] = ids.mask
    corrupted[to_random] = regular[rng.integers(regular.size, size=int(to_random.sum()))]
    labels = np.where(chosen, input_ids, IGNORE_INDEX).astype(np.int64)
    return corrupted, labels


def collate(examples: Sequence[Mapping[str, Any]], ids: TokenIds) -> dict[str, np.ndarray]:
    """Stack examples into a right-padded batch with an attention mask.

    Padding: `<pad>` ids, mask 0, position 0, the row's last language id, label -100. Examples
    without labels get all -100 token labels (masking fills them); scalar labels stay one per row.
    """
    if not examples:
        raise ValueError("cannot collate an empty list of examples")
    lengths = [len(e["input_ids"]) for e in examples]
    width = max(lengths)
    n = len(examples)
    batch = {
        "input_ids": np.full((n, width), ids.pad, dtype=np.int64),
        "attention_mask": np.zeros((n, width), dtype=np.int64),
        "langs": np.zeros((n, width), dtype=np.int64),
        "position_ids": np.zeros((n, width), dtype=np.int64),
    }
    scalar_labels = "labels" in examples[0] and np.ndim(examples[0]["labels"]) == 0
    if scalar_labels:
        batch["labels"] = np.array([e["labels"] for e in examples], dtype=np.int64)
    else:
        batch["labels"] = np.full((n, width), IGNORE_INDEX, dtype=np.int64)
    for row, (example, length) in enumerate(zip(examples, lengths)):
        batch["input_ids"][row, :length] = example["input_ids"]
        batch["attention_mask"][row, :length] = 1
        batch["langs"][row, :length] = example["langs"]
        batch["langs"][row, length:] = example["langs"][-1]
        batch["position_ids"][row, :length] = example["position_ids"]
        if not scalar_labels and "labels" in example:
            batch["labels"][row, :length] = example["labels"]
    return batch


# --- batch sequences ----------------------------------------------------------------------------
@dataclass
class ExampleGroup:
    """Examples that may share a batch (one language, or one language pair), and whether batches
    of them are MLM-masked."""

    name: str
    examples: list[dict]
    masked: bool = False


class TrainingBatches:
    """An endless, deterministic sequence of batches: `batches[step]` for any step >= 0.

    Each batch holds `batch_size` examples of one group. Epoch e (steps e·len .. (e+1)·len - 1)
    shuffles each group's examples and the batch order with a generator seeded by (seed, e), and
    masks the batches of masked groups with one seeded by (seed, e, batch index): new masks every
    epoch, identical across runs and processes. Incomplete batches at the end of a group are
    dropped (each epoch drops different examples).

    Args:
        groups: example groups (see `stream_examples`, `translation_pair_examples`, ...).
        batch_size: examples per batch (the global batch of a distributed run).
        ids: special token ids (padding, masking).
        masking: MLM rates for masked groups.
        seed: the seed of everything random.
        shuffle: shuffle examples and batches each epoch (otherwise groups in order).
    """

    def __init__(
        self,
        groups: Sequence[ExampleGroup],
        batch_size: int,
        ids: TokenIds,
        masking: MaskingConfig = MaskingConfig(),
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.groups = [g for g in groups if g.examples]
        self.batch_size = batch_size
        self.ids = ids
        self.masking = masking
        self.seed = seed
        self.shuffle = shuffle
        self._length = sum(len(g.examples) // batch_size for g in self.groups)
        if self._length == 0:
            sizes = {g.name: len(g.examples) for g in groups}
            raise ValueError(f"no group has a full batch of {batch_size} examples (group sizes: {sizes})")
        self._plan_epoch = -1
        self._plan: list[tuple[int, np.ndarray]] = []

    def __len__(self) -> int:
        """Batches per epoch."""
        return self._length

    def _epoch_plan(self, epoch: int) -> list[tuple[int, np.ndarray]]:
        if epoch != self._plan_epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
            plan = []
            for g, group in enumerate(self.groups):
                n = len(group.examples)
                order = rng.permutation(n) if self.shuffle else np.arange(n)
                for start in range(0, n - self.batch_size + 1, self.batch_size):
                    plan.append((g, order[start : start + self.batch_size]))
            if self.shuffle:
                plan = [plan[i] for i in rng.permutation(len(plan))]
            self._plan, self._plan_epoch = plan, epoch
        return self._plan

    def __getitem__(self, step: int) -> dict[str, np.ndarray]:
        if step < 0:
            raise IndexError(f"step must be non-negative, got {step}")
        epoch, index = divmod(int(step), self._length)
        g, rows = self._epoch_plan(epoch)[index]
        group = self.groups[g]
        batch = collate([group.examples[i] for i in rows], self.ids)
        if group.masked:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, index, 1]))
            batch["input_ids"], batch["labels"] = mask_tokens(batch["input_ids"], rng, self.ids, self.masking)
        return batch

    def group_of(self, step: int) -> str:
        """Name of the group that batch `step` comes from."""
        epoch, index = divmod(int(step), self._length)
        return self.groups[self._epoch_plan(epoch)[index][0]].name

    def iter_steps(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Batches of steps start, start+1, ... (endless when `stop` is None)."""
        step = start
        while stop is None or step < stop:
            yield self[step]
            step += 1

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self.iter_steps(0)


def shard_batch(batch: Mapping[str, np.ndarray], index: int, count: int) -> dict[str, np.ndarray]:
    """Rows `index` of `count` near-equal slices of a batch (for data-parallel ranks or gradient
    accumulation); raises when the batch has fewer rows than slices."""
    n = len(next(iter(batch.values())))
    if n < count:
        raise ValueError(f"a batch of {n} rows cannot be split into {count} non-empty shards")
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    return {k: v[bounds[index] : bounds[index + 1]] for k, v in batch.items()}


def count_targets(batch: Mapping[str, np.ndarray]) -> int:
    """Number of predicted positions: labels != -100 for token labels, rows for class labels."""
    labels = np.asarray(batch["labels"])
    return int(labels.shape[0]) if labels.ndim == 1 else int((labels != IGNORE_INDEX).sum())


# --- from text to batches -----------------------------------------------------------------------
OBJECTIVES = ("mlm", "clm", "tlm", "mlm+tlm")


def _language_pairs(languages: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(languages) for b in languages[i + 1 :]]


def pretraining_batches(
    encoded: Mapping[str, Sequence[Sequence[int]]],
    objective: str,
    lang2id: Mapping[str, int],
    ids: TokenIds,
    batch_size: int,
    bptt: int = 256,
    masking: MaskingConfig = MaskingConfig(),
    seed: int = 0,
) -> TrainingBatches:
    """Batches for `objective` ("mlm", "clm", "tlm" or "mlm+tlm") from encoded aligned sentences.

    `encoded[lang][i]` are the token ids of segment i in `lang` (see `encode_sentences`); the
    segments must align across languages for TLM. MLM / CLM use each language's stream; TLM pairs
    every two languages, each aligned pair once (half of them A→B, half B→A; one group per order).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    unknown = [lang for lang in encoded if lang not in lang2id]
    if unknown:
        raise ValueError(f"languages {unknown} have no id in lang2id {dict(lang2id)}")
    groups = []
    if objective in ("mlm", "clm", "mlm+tlm"):
        causal = objective == "clm"
        for lang, sentences in encoded.items():
            rows = stream_examples(sentences, lang2id[lang], ids, bptt=bptt, causal=causal)
            groups.append(ExampleGroup(f"{objective.split('+')[0]}:{lang}", rows, masked=not causal))
    if objective in ("tlm", "mlm+tlm"):
        if len(encoded) < 2:
            raise ValueError(f"TLM needs at least two languages, got {list(encoded)}")
        for k, (a, b) in enumerate(_language_pairs(list(encoded))):
            if len(encoded[a]) != len(encoded[b]):
                raise ValueError(f"TLM needs aligned data: {len(encoded[a])} {a} and {len(encoded[b])} {b} sentences")
            # Each aligned pair is used once, half of them as A→B and half as B→A (seeded).
            order = np.random.default_rng(np.random.SeedSequence([seed, 0x71, k])).permutation(len(encoded[a]))
            half = len(order) // 2
            for src, tgt, chosen in ((a, b, order[:half]), (b, a, order[half:])):
                rows = translation_pair_examples(
                    [encoded[src][i] for i in sorted(chosen)],
                    [encoded[tgt][i] for i in sorted(chosen)],
                    lang2id[src],
                    lang2id[tgt],
                    ids,
                    max_length=bptt,
                )
                groups.append(ExampleGroup(f"tlm:{src}-{tgt}", rows, masked=True))
    return TrainingBatches(groups, batch_size, ids, masking=masking, seed=seed)


def classification_examples(
    encoded: Mapping[str, Sequence[Sequence[int]]],
    lang2id: Mapping[str, int],
    ids: TokenIds,
    max_length: int = 128,
    seed: int = 0,
) -> list[dict]:
    """Examples of the "is B the translation of A" task over every ordered language pair: label
    1 (translation) / 0 (shuffled negative), balanced within each pair."""
    if len(encoded) < 2:
        raise ValueError(f"the pair task needs at least two languages, got {list(encoded)}")
    examples = []
    for k, (a, b) in enumerate(_language_pairs(list(encoded))):
        for d, (src, tgt) in enumerate(((a, b), (b, a))):
            examples += pair_classification_examples(
                encoded[src], encoded[tgt], lang2id[src], lang2id[tgt], ids, seed=seed * 1000 + 2 * k + d, max_length=max_length
            )
    return examples


def classification_batches(
    encoded: Mapping[str, Sequence[Sequence[int]]],
    lang2id: Mapping[str, int],
    ids: TokenIds,
    batch_size: int,
    max_length: int = 128,
    seed: int = 0,
) -> TrainingBatches:
    """`TrainingBatches` of `classification_examples` (no masking; one class label per row)."""
    examples = classification_examples(encoded, lang2id, ids, max_length, seed)
    return TrainingBatches([ExampleGroup("pairs", examples)], batch_size, ids, seed=seed)


# --- shared by the training loops of both backends ----------------------------------------------
def batches_from(batches: Any, start: int = 0) -> Iterator[Mapping[str, Any]]:
    """Batches of steps start, start+1, ... of any batch source.

    `TrainingBatches` (and anything with `iter_steps`) and sequences are indexed directly, a
    sequence cycling over its items; any other iterable is iterated from its start and the first
    `start` batches are skipped, which is exact only when it yields the same batches every time.
    """
    if start < 0:
        raise ValueError(f"start must be non-negative, got {start}")
    if hasattr(batches, "iter_steps"):
        yield from batches.iter_steps(start)
        return
    if hasattr(batches, "__getitem__") and hasattr(batches, "__len__") and not isinstance(batches, Mapping):
        n = len(batches)
        if n == 0:
            raise ValueError("batches is empty")
        step = start
        while True:
            yield batches[step % n]
            step += 1
    iterator = iter(batches)
    for step in range(start):
        try:
            next(iterator)
        except StopIteration:
            raise ValueError(f"batches ran out after {step} batches while skipping to step {start}") from None
    yield from iterator


def unigram_baseline(encoded: Mapping[str, Sequence[Sequence[int]]], batches: Iterable[Mapping[str, Any]], ids: TokenIds) -> dict[str, float]:
    """Masked-token accuracy of always predicting the most frequent regular token of `encoded`
    (the training text), on the token targets of `batches` (evaluation batches): the bar a masked LM
    has to clear. Returns {"accuracy", "token", "targets"}."""
    counts = np.zeros(ids.vocab_size, dtype=np.int64)
    for sentences in encoded.values():
        for sentence in sentences:
            counts += np.bincount(np.asarray(sentence, dtype=np.int64), minlength=ids.vocab_size)[: ids.vocab_size]
    counts[ids.special_ids] = 0
    token = int(counts.argmax())
    hits = total = 0
    for batch in batches:
        labels = np.asarray(batch["labels"])
        targets = labels[labels != IGNORE_INDEX]
        hits += int((targets == token).sum())
        total += int(targets.size)
    return {"accuracy": hits / max(total, 1), "token": token, "targets": total}


def warmup_linear_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor at optimiser step `step` (0-based): linear warmup from 1/warmup_steps
    to 1 over `warmup_steps`, then linear decay to 0 at `total_steps`. Both backends use it."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


@dataclass
class TrainingResult:
    """What the training functions return: the per-step metrics of this run (the dicts of the JSON
    log) and the step the model has reached."""

    step: int
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def losses(self) -> list[float]:
        """Loss of each step run in this call, in order."""
        return [m["loss"] for m in self.metrics]
