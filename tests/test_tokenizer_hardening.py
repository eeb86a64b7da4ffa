"""The tokenizer on bad files and extreme inputs, and its push_to_hub.

- vocab.json / merges.txt / tokenizer_config.json / special_tokens_map.json that are not JSON, not UTF-8
  or hold a bad merge line: a ValueError naming the file and the line (or key).
- `xlm.tokenizer.long_words.merge_symbols` (BPE of long words in O(n log n)) gives exactly the pieces
  of transformers' rank-by-rank loop, transcribed here, on random words and rank tables and on long
  real words; token ids of text with long words equal transformers 4.57.6's `XLMTokenizer`.
- One 1,000,000-character line, 100,000 lines, only combining marks and only control characters in
  both preprocessing modes.
- `push_to_hub` uploads what `save_pretrained` writes (no network), and says so when offline.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import subprocess
import sys

import pytest

from xlm.tokenizer import XLMTokenizer, read_merges
from xlm.tokenizer.long_words import LONG_WORD, merge_symbols

transformers = pytest.importorskip("transformers")
from transformers import XLMTokenizer as HFTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB_DIR = os.path.join(ROOT, "xlm", "data", "test_tokenizer")
VOCAB = os.path.join(VOCAB_DIR, "vocab.json")
MERGES = os.path.join(VOCAB_DIR, "merges.txt")
SLICE = os.path.join(ROOT, "xlm", "data", "lohelp", "en-fr-de-slice.tsv.gz")
MODES = ("transformers", "original_xlm")


def corpus_sentences() -> list[str]:
    """The en, fr and de sentences of the bundled slice, row by row."""
    with gzip.open(SLICE, "rt", encoding="utf-8") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle]
    columns = [rows[0].index(lang) for lang in ("en", "fr", "de")]
    return [row[c] for row in rows[1:] for c in columns]


def tokenizer_dir(tmp_path, **replace: str | bytes) -> str:
    """A copy of the demo tokenizer's directory with some files (by name) replaced."""
    directory = tmp_path / "tok"
    shutil.copytree(VOCAB_DIR, directory)
    for name, content in replace.items():
        path = directory / name.replace("__", ".")
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, "utf-8")
    return str(directory)


def load_error(directory: str) -> str:
    """The ValueError message of `XLMTokenizer.from_pretrained(directory)`."""
    with pytest.raises(ValueError) as from_dir:
        XLMTokenizer.from_pretrained(directory)
    return str(from_dir.value)


# --- bad files ----------------------------------------------------------------------------------


def test_vocab_that_is_not_json_names_the_file_and_line(tmp_path):
    directory = tokenizer_dir(tmp_path, vocab__json='{\n  "a": 0,\n  "b": 1\n  "c": 2\n}\n')
    vocab = os.path.join(directory, "vocab.json")
    message = load_error(directory)
    assert message.startswith(f"{vocab} is not valid JSON: ") and "line 4 column 3" in message
    with pytest.raises(ValueError, match="line 4 column 3") as direct:
        XLMTokenizer(vocab, MERGES)
    assert str(direct.value) == message


@pytest.mark.parametrize("content, expected", [
    ('["<s>", "</s>"]', "must hold a JSON object, got list"),
    ('"just a string"', "must hold a JSON object, got str"),
    ('{"<s>": 0, "the</w>": "1"}',
     "expected a JSON object mapping token strings to integer ids; 'the</w>' maps to '1'"),
    ('{"<s>": 0, "x": 1.5}', "'x' maps to 1.5"),
    ('{"<s>": 0, "x": true}', "'x' maps to True"),
    ('{"<s>": 0, "x": null}', "'x' maps to None"),
])
def test_vocab_of_the_wrong_shape_names_the_file_and_key(tmp_path, content, expected):
    directory = tokenizer_dir(tmp_path, vocab__json=content)
    vocab = os.path.join(directory, "vocab.json")
    message = load_error(directory)
    assert message.startswith(vocab) and expected in message
    with pytest.raises(ValueError) as direct:
        XLMTokenizer(vocab, MERGES)
    assert str(direct.value) == message


def test_vocab_that_is_not_utf8_names_the_file_and_line(tmp_path):
    latin1 = '{\n  "<s>": 0,\n  "été</w>": 1\n}\n'.encode("latin-1")
    directory = tokenizer_dir(tmp_path, vocab__json=latin1)
    vocab = os.path.join(directory, "vocab.json")
    assert load_error(directory) == f"{vocab} is not UTF-8 text: line 3 holds the byte 0xe9"
    # far into a large file (past any read buffer), the line is still right
    big = b"{\n" + b"".join(b'  "w%d": %d,\n' % (i, i) for i in range(20000)) + b'  "\xff": 20000\n}\n'
    (tmp_path / "big.json").write_bytes(big)
    with pytest.raises(ValueError, match=r"big.json is not UTF-8 text: line 20002 holds the byte 0xff$"):
        XLMTokenizer(str(tmp_path / "big.json"), MERGES)


GOOD = ["e r", "e n", "e n</w>"]


@pytest.mark.parametrize("bad, fields", [
    ("lonely", "1 fields"),
    ("a b c d", "4 fields"),
    ("a b 12 extra", "4 fields"),
])
@pytest.mark.parametrize("header", [False, True])
def test_merges_line_of_the_wrong_shape_names_the_file_and_line(tmp_path, bad, fields, header):
    lines = (["#version: 0.2"] if header else []) + GOOD + ["", bad] + GOOD
    directory = tokenizer_dir(tmp_path, merges__txt="\n".join(lines) + "\n")
    merges = os.path.join(directory, "merges.txt")
    number = 6 if header else 5  # the blank line counts
    message = load_error(directory)
    assert message.startswith(f"{merges}: line {number} holds {fields} ({bad!r})")
    with pytest.raises(ValueError) as direct:
        XLMTokenizer(VOCAB, merges)
    assert str(direct.value) == message


@pytest.mark.parametrize("count", ["many", "12a", "0x1f", "-", "1e"])
@pytest.mark.parametrize("header", [False, True])
def test_merges_count_that_is_not_a_number_names_the_file_and_line(tmp_path, count, header):
    lines = (["#version: 0.2"] if header else []) + [f"{pair} {100 - i}" for i, pair in enumerate(GOOD)]
    lines.append(f"a b {count}")
    directory = tokenizer_dir(tmp_path, merges__txt="\n".join(lines) + "\n")
    merges = os.path.join(directory, "merges.txt")
    number = 5 if header else 4
    assert load_error(directory) == (
        f"{merges}: line {number} ({f'a b {count}'!r}) has a third field {count!r} that is not a number; "
        "a merge is two symbols, fastBPE's codes add a count"
    )


@pytest.mark.parametrize("header", ["", "#version: 0.2\n"])
def test_fastbpe_counts_and_version_header_are_accepted(tmp_path, header):
    """fastBPE's "a b count" lines (any number as the count) and a #version header read the same merges,
    and tokenize as the plain file does in transformers."""
    merges = read_merges(MERGES)
    counts = ["7", "-3", "12.5", "1e3", "+4", "0"]
    path = tmp_path / "codes.txt"
    path.write_text(header + "".join(f"{a} {b} {counts[i % len(counts)]}\n" for i, (a, b) in enumerate(merges)),
                    "utf-8")
    assert read_merges(str(path)) == merges
    text = "Bonjour, le monde entier! Ein schöner Tag."
    assert XLMTokenizer(VOCAB, str(path))(text)["input_ids"] == HFTokenizer(VOCAB, MERGES)(text)["input_ids"]


def test_merges_that_are_not_utf8_name_the_file_and_line(tmp_path):
    directory = tokenizer_dir(tmp_path, merges__txt=b"e r\ne n\n\xe9 t\n")
    merges = os.path.join(directory, "merges.txt")
    assert load_error(directory) == f"{merges} is not UTF-8 text: line 3 holds the byte 0xe9"


@pytest.mark.parametrize("name", ["tokenizer_config.json", "special_tokens_map.json"])
def test_config_files_that_are_not_json_name_the_file(tmp_path, name):
    directory = tokenizer_dir(tmp_path, **{name.replace(".", "__"): '{"bos_token": "<s>",\n'})
    message = load_error(directory)
    assert message.startswith(f"{os.path.join(directory, name)} is not valid JSON: ") and "line 2" in message
    directory = tokenizer_dir(tmp_path / "list", **{name.replace(".", "__"): '["<s>"]'})
    assert load_error(directory) == f"{os.path.join(directory, name)} must hold a JSON object, got list"
    directory = tokenizer_dir(tmp_path / "latin1", **{name.replace(".", "__"): '{"bos_token": "é"}'.encode("latin-1")})
    assert load_error(directory) == f"{os.path.join(directory, name)} is not UTF-8 text: line 1 holds the byte 0xe9"


# --- BPE of long words --------------------------------------------------------------------------


def reference_bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """transformers' `XLMTokenizer.bpe` loop: merge every occurrence of the lowest-ranked pair present,
    left to right without overlaps, until no pair has a rank."""
    word = tuple(symbols)
    while len(word) > 1:
        pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
        bigram = min(pairs, key=lambda pair: ranks.get(pair, float("inf")))
        if bigram not in ranks:
            break
        first, second = bigram
        new_word, i = [], 0
        while i < len(word):
            try:
                j = word.index(first, i)
            except ValueError:
                new_word.extend(word[i:])
                break
            new_word.extend(word[i:j])
            i = j
            if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                new_word.append(first + second)
                i += 2
            else:
                new_word.append(word[i])
                i += 1
        word = tuple(new_word)
    return list(word)


def bpe_symbols(word: str) -> list[str]:
    return list(word[:-1]) + [word[-1] + "</w>"]


def random_ranks(rng: random.Random, alphabet: str) -> dict[tuple[str, str], int]:
    """A random merge table over `alphabet`: each merge joins two symbols that exist (letters, letters
    with `</w>`, earlier merges), so that merges build on each other; ranks in creation order as BPE
    learns them, or shuffled."""
    symbols = list(alphabet) + [c + "</w>" for c in alphabet]
    pairs: list[tuple[str, str]] = []
    for _ in range(rng.randint(1, 60)):
        short = sorted(symbols, key=len)[: max(4, len(symbols) // 2)]
        first = rng.choice(short if rng.random() < 0.7 else symbols)
        second = rng.choice(short if rng.random() < 0.7 else symbols)
        if first.endswith("</w>") or (first, second) in pairs:
            continue
        pairs.append((first, second))
        symbols.append(first + second)
    if rng.random() < 0.5:
        rng.shuffle(pairs)
    return {pair: rank for rank, pair in enumerate(pairs)}


def test_merge_symbols_equals_the_reference_loop_on_random_words():
    rng = random.Random(1234)
    merged = compared = 0
    for _ in range(3000):
        alphabet = "".join(rng.sample("abcdefgh", rng.randint(2, 5)))
        ranks = random_ranks(rng, alphabet)
        if rng.random() < 0.2:  # runs of one letter: "aaaa...", where pairs overlap
            word = alphabet[0] * rng.randint(1, 300)
        else:
            word = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))
        symbols = bpe_symbols(word)
        expected = reference_bpe(symbols, ranks)
        assert merge_symbols(symbols, ranks) == expected, (word, ranks)
        compared += 1
        merged += len(expected) < len(symbols)
    assert merged > 0.8 * compared  # the tables do merge most words


def test_merge_symbols_on_runs_of_one_letter():
    """'a' * n with merges that overlap (aa, aaa, aaaa, ...), in both rank orders, for every n up to 300."""
    growing = {("a", "a"): 0, ("aa", "a"): 1, ("aa", "aa"): 2, ("aaaa", "a"): 3, ("a", "a</w>"): 4,
               ("aa", "a</w>"): 5, ("aaaa", "aaaa"): 6, ("aaaa", "aa"): 7, ("aaaaaaaa", "a</w>"): 8}
    shrinking = {pair: len(growing) - 1 - rank for pair, rank in growing.items()}
    for ranks in (growing, shrinking):
        for n in range(1, 301):
            symbols = bpe_symbols("a" * n)
            assert merge_symbols(symbols, ranks) == reference_bpe(symbols, ranks), (n, ranks is growing)
    assert merge_symbols([], growing) == []
    assert merge_symbols(["a</w>"], growing) == ["a</w>"]


def long_real_words() -> list[str]:
    """Words of 65 to 5,000 characters: corpus text with spaces (and, for some, punctuation) removed."""
    text = " ".join(corpus_sentences()[:600])
    lowered = XLMTokenizer.from_pretrained(VOCAB_DIR)._lower(text)
    letters = "".join(c for c in lowered if c.isalpha())
    no_spaces = lowered.replace(" ", "")
    words = []
    for length in (65, 66, 100, 257, 1000, 2500, 5000):
        start = (length * 7919) % 20000
        words += [letters[start : start + length], no_spaces[start : start + length]]
    return words


def test_merge_symbols_on_long_real_words_equals_transformers_bpe():
    """With the demo vocabulary's 4,000 merges: merge_symbols, our `bpe` and transformers' `bpe` agree."""
    ours, theirs = XLMTokenizer(VOCAB, MERGES), HFTokenizer(VOCAB, MERGES)
    for word in long_real_words():
        assert len(word) > LONG_WORD
        pieces = merge_symbols(bpe_symbols(word), ours.bpe_ranks)
        assert pieces == reference_bpe(bpe_symbols(word), ours.bpe_ranks)
        assert " ".join(pieces) == ours.bpe(word) == theirs.bpe(word)
        assert len(pieces) < len(word) / 1.5  # real merges happened


@pytest.mark.parametrize("lowercase", [True, False])
def test_text_with_long_words_has_transformers_ids(lowercase):
    rng = random.Random(5)
    words = long_real_words()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    base64 = "".join(rng.choice(alphabet) for _ in range(3000))
    url = "https://example.com/" + "/".join(words[2:6]) + "?q=" + words[1]
    texts = [
        f"Voici un mot: {words[0]} et un autre {words[5]}.",
        words[9] + " " + words[10],
        words[13],
        base64,
        url,
        "ab" * 1000 + " " + "a" * 4000,
        "Die " + words[7] + ", und " + words[11].upper() + "!",
    ]
    kwargs = {"do_lowercase_and_remove_accent": lowercase}
    ours = XLMTokenizer(VOCAB, MERGES, **kwargs)(texts)["input_ids"]
    theirs = HFTokenizer(VOCAB, MERGES, **kwargs)(texts)["input_ids"]
    assert ours == theirs
    assert max(map(len, ours)) > 1000


# --- extreme inputs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return corpus_sentences()


@pytest.mark.parametrize("mode", MODES)
def test_one_line_of_a_million_characters(sentences, mode):
    """Real text joined into one 1,000,000-character line: its ids begin with those of its first 20,000
    characters (transformers' for the default mode), up to the few tokens at the cut."""
    text = " ".join(sentences)
    line = (text * (1_000_000 // len(text) + 1))[:1_000_000]
    ids = XLMTokenizer.from_pretrained(VOCAB_DIR, preprocessing=mode)(line)["input_ids"]
    assert 1_000_000 / 10 < len(ids) < 1_000_000 / 2
    assert ids[0] == 0 and ids[-1] == 1 and ids.count(3) < len(ids) / 100  # <s> ... </s>, few <unk>
    prefix = line[:20_000]
    if mode == "transformers":
        expected = HFTokenizer.from_pretrained(VOCAB_DIR)(prefix)["input_ids"]
    else:
        expected = XLMTokenizer.from_pretrained(VOCAB_DIR, preprocessing=mode)(prefix)["input_ids"]
    assert len(expected) > 3000
    assert ids[: len(expected) - 10] == expected[:-10]


@pytest.mark.parametrize("mode", MODES)
def test_a_hundred_thousand_short_lines(sentences, mode):
    """A batch of 100,000 lines: each line's ids are those of the line alone (a fresh tokenizer), and
    transformers' for the default mode."""
    lines = [s[: 20 + i % 60] for i, s in enumerate((sentences * (100_000 // len(sentences) + 1))[:100_000])]
    batch = XLMTokenizer.from_pretrained(VOCAB_DIR, preprocessing=mode)(lines)["input_ids"]
    assert len(batch) == 100_000 and all(ids[0] == 0 and ids[-1] == 1 for ids in batch)
    sample = random.Random(0).sample(range(100_000), 200)
    single = XLMTokenizer.from_pretrained(VOCAB_DIR, preprocessing=mode)
    assert [batch[i] for i in sample] == [single(lines[i])["input_ids"] for i in sample]
    if mode == "transformers":
        reference = HFTokenizer.from_pretrained(VOCAB_DIR)
        assert [batch[i] for i in sample] == [reference(lines[i])["input_ids"] for i in sample]


MARKS = "".join(random.Random(0).choice("\u0300\u0301\u0302\u0308\u0327\u0331\u20d7") for _ in range(100_000))
CONTROLS = "".join(random.Random(0).choice("\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85\u200b\u200e\ufeff")
                   for _ in range(100_000))


@pytest.mark.parametrize("mode", MODES)
def test_only_combining_marks(mode):
    """100,000 combining marks with nothing to attach to: accent removal drops them all; without it Moses
    makes every mark a word of its own, unknown. The default mode equals transformers on a prefix."""
    lowered = XLMTokenizer.from_pretrained(VOCAB_DIR, preprocessing=mode)
    assert lowered(MARKS)["input_ids"] == [0, 1]
    cased = XLMTokenizer.from_pretrained(VOCAB_DIR, preprocessing=mode, do_lowercase_and_remove_accent=False)
    assert cased(MARKS)["input_ids"] == [0] + [3] * len(MARKS) + [1]
    assert cased.tokenize(MARKS[:1000]) == [mark + "</w>" for mark in MARKS[:1000]]
    if mode == "transformers":
        for kwargs, ours in (({}, lowered), ({"do_lowercase_and_remove_accent": False}, cased)):
            theirs = HFTokenizer.from_pretrained(VOCAB_DIR, **kwargs)
            prefix = MARKS[:3000] + " a" + MARKS[:500] + " b\u0301" + MARKS[:100]
            assert ours(prefix)["input_ids"] == theirs(prefix)["input_ids"]


@pytest.mark.parametrize("mode", MODES)
def test_only_control_characters(mode):
    """100,000 control and format characters are removed as non-printing: only the special tokens remain,
    and between words they change nothing."""
    for lowercase in (True, False):
        tokenizer = XLMTokenizer.from_pretrained(VOCAB_DIR, preprocessing=mode,
                                                 do_lowercase_and_remove_accent=lowercase)
        assert tokenizer(CONTROLS)["input_ids"] == [0, 1]
        assert tokenizer.tokenize(CONTROLS) == []
        assert tokenizer(["Hello world", CONTROLS[:5000], ""])["input_ids"][1:] == [[0, 1], [0, 1]]
        plain = "Hello there, world."
        assert tokenizer(plain.replace(" ", " " + CONTROLS[:5000] + " "))["input_ids"] == tokenizer(plain)["input_ids"]
    if mode == "transformers":
        assert HFTokenizer.from_pretrained(VOCAB_DIR)(CONTROLS[:20000])["input_ids"] == [0, 1]


# --- push_to_hub --------------------------------------------------------------------------------


@pytest.fixture
def recording_hub(monkeypatch):
    """huggingface_hub.HfApi replaced by one that records the calls and the files each upload sends."""
    import huggingface_hub
    from huggingface_hub import RepoUrl, constants

    calls = []

    class RecordingHfApi:
        def __init__(self, token=None, **kwargs):
            self.token = token

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs, self.token))
            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            files = {}
            for root, _, names in os.walk(folder_path):
                for name in names:
                    path = os.path.join(root, name)
                    with open(path, "rb") as handle:
                        files[os.path.relpath(path, folder_path)] = handle.read()
            calls.append(("upload_folder", repo_id, kwargs, files))
            return "commit-info"

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    return calls


def test_push_to_hub_uploads_what_save_pretrained_writes(tmp_path, recording_hub):
    """One repository creation and one upload of exactly the save_pretrained files, which load back (ours
    and transformers') to the same ids; no network."""
    tokenizer = XLMTokenizer.from_pretrained(VOCAB_DIR, model_max_length=128)
    tokenizer.add_tokens(["<new_token>"])
    result = tokenizer.push_to_hub("me/tiny-tokenizer", private=True, token="secret", create_pr=True,
                                   revision="dev", commit_description="tokenizer files")
    assert result == "commit-info"
    (create, repo_id, create_kwargs, token), (upload, upload_repo, upload_kwargs, files) = recording_hub
    assert (create, repo_id, token, create_kwargs["private"], create_kwargs["exist_ok"]) == (
        "create_repo", "me/tiny-tokenizer", "secret", True, True)
    assert (upload, upload_repo) == ("upload_folder", "me/tiny-tokenizer")
    assert {k: upload_kwargs[k] for k in ("commit_message", "create_pr", "revision", "commit_description")} == {
        "commit_message": "Upload tokenizer", "create_pr": True, "revision": "dev",
        "commit_description": "tokenizer files"}
    tokenizer.save_pretrained(tmp_path / "local")
    local = {name: (tmp_path / "local" / name).read_bytes() for name in os.listdir(tmp_path / "local")}
    assert files == local
    assert sorted(files) == ["merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"]
    pushed = tmp_path / "pushed"
    pushed.mkdir()
    for name, data in files.items():
        (pushed / name).write_bytes(data)
    texts = ["Hello <new_token> world!", "Le café est très bon.", corpus_sentences()[7]]
    expected = tokenizer(texts)["input_ids"]
    assert XLMTokenizer.from_pretrained(pushed)(texts)["input_ids"] == expected
    assert HFTokenizer.from_pretrained(pushed)(texts)["input_ids"] == expected
    assert XLMTokenizer.from_pretrained(pushed).model_max_length == 128

    recording_hub.clear()
    tokenizer.push_to_hub("me/tiny-tokenizer", commit_message="second")
    assert [call[0] for call in recording_hub] == ["create_repo", "upload_folder"]
    assert recording_hub[1][2]["commit_message"] == "second" and recording_hub[1][2]["create_pr"] is False


def test_push_to_hub_rejects_a_bad_repo_id(recording_hub):
    with pytest.raises(ValueError, match=r"repo_id must be a Hub repository id .*got '../escape'"):
        XLMTokenizer.from_pretrained(VOCAB_DIR).push_to_hub("../escape")
    assert recording_hub == []


def test_push_to_hub_offline_says_so():
    """HF_HUB_OFFLINE=1 (set before huggingface_hub is imported): a clear OSError, nothing uploaded."""
    script = (
        "from xlm.tokenizer import XLMTokenizer\n"
        f"tokenizer = XLMTokenizer.from_pretrained({VOCAB_DIR!r})\n"
        "try:\n"
        "    tokenizer.push_to_hub('me/tiny-tokenizer')\n"
        "except OSError as err:\n"
        "    print('OSError:', err)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("OSError:")] == [(
        "OSError: cannot push the tokenizer to Hub repository 'me/tiny-tokenizer': offline mode is on "
        "(HF_HUB_OFFLINE=1); unset HF_HUB_OFFLINE to upload, or save_pretrained(directory) to keep the files "
        "locally"
    )]
