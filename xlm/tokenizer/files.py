"""The tokenizer's files: names, reading `vocab.json` and `merges.txt`, atomic writing."""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from typing import Any

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json", "merges_file": "merges.txt"}
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"

# the count that fastBPE's codes files write after a merge
_COUNT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


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


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise ValueError(f"{path} is not UTF-8 text: line {line} holds the byte 0x{err.object[err.start]:02x}") from None


def read_json_object(path: str) -> dict[str, Any]:
    """The JSON object in the file `path`; ValueError naming the file (and where) if it is not one."""
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_merges(path: str) -> list[tuple[str, str]]:
    """Read BPE merges ("a b" per line; fastBPE's "a b count" keeps the first two fields).

    A first line starting with "#version" is a header. The last line is kept even without a
    final newline (transformers drops it). A line of one field, of more than "a b count", or whose
    count is not a number is a ValueError naming the file and the line.
    """
    lines = _read_text(path).split("\n")
    first = 1
    if lines and lines[0].startswith("#version"):
        lines, first = lines[1:], 2
    merges = []
    for number, line in enumerate(lines, start=first):
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 1 or len(fields) > 3:
            raise ValueError(
                f"{path}: line {number} holds {len(fields)} fields ({line[:80]!r}); a merge is two symbols "
                "(fastBPE's codes add a count)"
            )
        if len(fields) == 3 and _COUNT.fullmatch(fields[2]) is None:
            raise ValueError(
                f"{path}: line {number} ({line[:80]!r}) has a third field {fields[2][:20]!r} that is not a "
                "number; a merge is two symbols, fastBPE's codes add a count"
            )
        merges.append((fields[0], fields[1]))
    return merges


def _read_vocab(path: str) -> dict[str, int]:
    vocab = read_json_object(path)
    bad = next((k for k, v in vocab.items() if not isinstance(v, int) or isinstance(v, bool)), None)
    if bad is not None:
        raise ValueError(f"{path}: expected a JSON object mapping token strings to integer ids; {bad!r} maps to "
                         f"{vocab[bad]!r}")
    return vocab
