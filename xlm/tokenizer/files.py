"""The tokenizer's files: names, reading `vocab.json` and `merges.txt`, atomic writing."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from typing import Any

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json", "merges_file": "merges.txt"}
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"


@functools.lru_cache(maxsize=None)
def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it; read once
    os.umask(mask)
    return mask


def _atomic_write(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read_merges(path: str) -> list[tuple[str, str]]:
    """Read BPE merges ("a b" per line; fastBPE's "a b count" keeps the first two fields).

    A first line starting with "#version" is a header. The last line is kept even without a
    final newline (transformers drops it).
    """
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{path}: line {number} holds one field ({line!r}); a merge needs two")
        merges.append((fields[0], fields[1]))
    return merges


def _read_vocab(path: str) -> dict[str, int]:
    with open(path, encoding="utf-8") as handle:
        vocab = json.load(handle)
    if not isinstance(vocab, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in vocab.items()
    ):
        raise ValueError(f"{path}: expected a JSON object mapping token strings to integer ids")
    return vocab
