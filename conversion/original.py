"""facebookresearch/XLM `.pth` checkpoints -> a complete model directory.

An original checkpoint is a pickled dict: `model` (or `encoder` / `decoder` for translation
models; keys possibly prefixed with `module.`), `params` (a dict or an argparse Namespace),
`dico_word2id` / `dico_id2word` / `dico_counts`, plus optimiser state and counters. The BPE codes
(fastBPE "a b count" lines) ship separately. The result holds config.json (lang2id / id2lang
included), the weights, and vocab.json + merges.txt + tokenizer_config.json (whose
`preprocessing: "original_xlm"` makes XLMTokenizer tokenize as the original scripts did).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from xlm._io import atomic_directory
from xlm.checkpoint import CheckpointError, save_state_dict
from xlm.config import XLMConfig
from xlm.weights import WeightMismatchError, spec_index, weight_specs

__all__ = ["convert_original_checkpoint", "load_original_checkpoint", "config_from_params", "original_vocab",
           "UnsupportedCheckpointError"]

# Ids 0..13 of an XLM dictionary are <s>, </s>, <pad>, <unk> and <special0..9>: kept verbatim.
N_SPECIAL_WORDS = 14
CONTINUATION = "@@"
END_OF_WORD = "</w>"


class UnsupportedCheckpointError(ValueError):
    """An original checkpoint uses a feature no XLM implementation here supports."""


def _safe_globals() -> list:
    """Exactly the non-tensor types original XLM checkpoints pickle (params and counters):
    argparse.Namespace (params of some releases), numpy arrays (params.mask_scores), numpy
    scalars (metrics) and their numeric dtypes, under numpy 1.x and 2.x module names."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # numpy 2 / 1
    allowed: list = [argparse.Namespace, np.ndarray, np.dtype]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed.append((multiarray._reconstruct, f"{module}._reconstruct"))
        allowed.append((multiarray.scalar, f"{module}.scalar"))
    dtype_classes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles dtypes by class (protocol 2)
    if dtype_classes is not None:
        for name in ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                     "Float16", "Float32", "Float64"):
            allowed.append(getattr(dtype_classes, f"{name}DType"))
    return allowed


def load_original_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Unpickle an original XLM checkpoint safely (weights_only=True plus the allow-list)."""
    from xlm._backend import require

    torch = require("torch")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such original XLM checkpoint: {path}")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        text = str(err)
        marker = "Unsupported global: GLOBAL "
        if marker in text:
            name = text.split(marker, 1)[1].split()[0]
            raise CheckpointError(
                f"{path} pickles {name}, which is not among the types original XLM checkpoints hold; "
                "refusing to unpickle it (weights_only=True)"
            ) from None
        first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupted?): {first}") from None
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not an original XLM checkpoint dict")
    return dict(data)


def _params_dict(params: Any, path: str) -> dict[str, Any]:
    if isinstance(params, argparse.Namespace):
        return dict(vars(params))
    if isinstance(params, Mapping):
        return dict(params)
    raise CheckpointError(f"{path}: 'params' is a {type(params).__name__}, expected a dict or an argparse Namespace")


def _model_state(data: Mapping[str, Any], part: str | None, path: str) -> tuple[str, dict[str, Any]]:
    parts = [k for k in ("model", "encoder", "decoder") if isinstance(data.get(k), Mapping)]
    if part is None:
        if "model" not in parts:
            raise CheckpointError(
                f"{path} has no 'model' state dict (it holds {', '.join(parts) or 'none of model/encoder/decoder'}); "
                "choose one with --part"
            )
        part = "model"
    if part not in parts:
        raise CheckpointError(f"{path} has no {part!r} state dict (found: {', '.join(parts) or 'none'})")
    state = {}
    for key, value in data[part].items():
        name = key[len("module."):] if key.startswith("module.") else key
        state[name] = value
    if part == "decoder" or any(k.startswith("encoder_attn.") for k in state):
        raise UnsupportedCheckpointError(
            f"{path}: the {part!r} is a translation decoder (encoder_attn layers); only encoders and "
            "language models are supported"
        )
    memories = sorted({k.split(".")[1] for k in state if k.startswith("memories.")})
    if memories:
        raise UnsupportedCheckpointError(
            f"{path}: product-key memory layers ({', '.join('memories.' + m for m in memories)}) are not supported "
            "by any XLM implementation here (neither PyTorch, Keras nor transformers)"
        )
    return part, state


def _lang_maps(params: Mapping[str, Any]) -> tuple[dict[str, int], dict[int, str]]:
    lang2id = params.get("lang2id")
    id2lang = params.get("id2lang")
    if lang2id is None and id2lang is None:
        langs = params.get("langs") or []
        if isinstance(langs, str):
            langs = [lang for lang in langs.replace("-", ",").split(",") if lang]
        lang2id = {lang: i for i, lang in enumerate(sorted(set(langs)))}  # the original numbers them sorted
    if lang2id is None:
        lang2id = {lang: int(i) for i, lang in id2lang.items()}
    if id2lang is None:
        id2lang = {int(i): lang for lang, i in lang2id.items()}
    return {str(k): int(v) for k, v in lang2id.items()}, {int(k): str(v) for k, v in id2lang.items()}


def config_from_params(params: Mapping[str, Any], state: Mapping[str, Any], **overrides: Any) -> XLMConfig:
    """XLMConfig of an original checkpoint: hyper-parameters from `params`, sizes from the tensors.

    `causal` is True for models trained only with the CLM objective (clm_steps set, mlm_steps
    empty); pass overrides (e.g. causal=False) to change any field.
    """
    def need(name: str) -> Any:
        if name not in params:
            raise CheckpointError(f"original params lack {name!r}, needed for config.json")
        return params[name]

    embeddings = state.get("embeddings.weight")
    positions = state.get("position_embeddings.weight")
    if embeddings is None or positions is None:
        raise CheckpointError("the original state dict lacks embeddings.weight / position_embeddings.weight")
    emb_dim = int(need("emb_dim"))
    vocab_size = int(embeddings.shape[0])
    if "n_words" in params and int(params["n_words"]) != vocab_size:
        raise CheckpointError(f"params n_words={params['n_words']} but embeddings.weight has {vocab_size} rows")
    lang2id, id2lang = _lang_maps(params)
    n_langs = int(params.get("n_langs", len(lang2id) or 1))
    asm = bool(params.get("asm", False))
    cutoffs = params.get("asm_cutoffs")
    if isinstance(cutoffs, str):
        cutoffs = [int(c) for c in cutoffs.split(",") if c]
    clm, mlm = params.get("clm_steps"), params.get("mlm_steps")
    kwargs: dict[str, Any] = dict(
        vocab_size=vocab_size,
        emb_dim=emb_dim,
        n_layers=int(need("n_layers")),
        n_heads=int(need("n_heads")),
        dropout=float(params.get("dropout", 0.1)),
        attention_dropout=float(params.get("attention_dropout", 0.1)),
        gelu_activation=bool(params.get("gelu_activation", True)),
        sinusoidal_embeddings=bool(params.get("sinusoidal_embeddings", False)),
        causal=bool(clm) and not bool(mlm),
        asm=asm,
        asm_cutoffs=list(cutoffs) if asm and cutoffs else None,
        asm_div_value=float(params["asm_div_value"]) if asm and "asm_div_value" in params else None,
        n_langs=n_langs,
        use_lang_emb=bool(params.get("use_lang_emb", True)),
        max_position_embeddings=int(positions.shape[0]),
        embed_init_std=emb_dim ** -0.5,
        layer_norm_eps=1e-12,  # hard-coded in the original model
        bos_index=int(params.get("bos_index", 0)),
        eos_index=int(params.get("eos_index", 1)),
        pad_index=int(params.get("pad_index", 2)),
        unk_index=int(params.get("unk_index", 3)),
        mask_index=int(params.get("mask_index", 5)),
        pad_token_id=int(params.get("pad_index", 2)),
        bos_token_id=int(params.get("bos_index", 0)),
        lang2id=lang2id if len(lang2id) == n_langs else None,
        id2lang=id2lang if len(id2lang) == n_langs else None,
    )
    kwargs.update(overrides)
    try:
        return XLMConfig(**kwargs)
    except ValueError as err:
        raise CheckpointError(f"the original params give an invalid config: {err}") from None


def original_vocab(word2id: Mapping[str, int]) -> dict[str, int]:
    """vocab.json from an original dictionary: specials kept, 'xx@@' -> 'xx', other words 'xx</w>'."""
    vocab: dict[str, int] = {}
    for word, index in sorted(word2id.items(), key=lambda item: item[1]):
        index = int(index)
        if index < N_SPECIAL_WORDS:
            token = word
        elif word.endswith(CONTINUATION):
            token = word[: -len(CONTINUATION)]
        else:
            token = word + END_OF_WORD
        if token in vocab:
            raise CheckpointError(f"dictionary words {word!r} (id {index}) and id {vocab[token]} both become {token!r}")
        vocab[token] = index
    return vocab


def dictionary_from_vocab(vocab: Mapping[str, int]) -> dict[str, int]:
    """The inverse of `original_vocab` (for checking round trips)."""
    word2id = {}
    for token, index in vocab.items():
        if index < N_SPECIAL_WORDS:
            word = token
        elif token.endswith(END_OF_WORD):
            word = token[: -len(END_OF_WORD)]
        else:
            word = token + CONTINUATION
        word2id[word] = int(index)
    return word2id


def _check_dictionary(data: Mapping[str, Any], vocab_size: int, path: str) -> dict[str, int]:
    word2id = data.get("dico_word2id")
    if not isinstance(word2id, Mapping):
        raise CheckpointError(f"{path} has no 'dico_word2id' dictionary")
    ids = sorted(int(i) for i in word2id.values())
    if ids != list(range(vocab_size)):
        raise CheckpointError(
            f"{path}: dico_word2id has {len(word2id)} words with ids {ids[:1]}..{ids[-1:]}, "
            f"but the model has {vocab_size} embeddings (ids 0..{vocab_size - 1} expected, each once)"
        )
    id2word = data.get("dico_id2word")
    if isinstance(id2word, Mapping):
        bad = [i for i, w in id2word.items() if word2id.get(w) != int(i)]
        if bad:
            raise CheckpointError(f"{path}: dico_id2word and dico_word2id disagree at ids {bad[:5]}")
    return {str(w): int(i) for w, i in word2id.items()}


def _original_weights(state: dict[str, Any], config: XLMConfig, architecture: str, path: str) -> dict[str, np.ndarray]:
    """The state dict renamed through the weight table's original_name; every tensor used once."""
    from xlm._backend import require

    torch = require("torch")
    specs = weight_specs(config, architecture)
    by_original = spec_index(specs, "original_name")
    out: dict[str, np.ndarray] = {}
    unexpected, mismatched = [], []
    for key, value in state.items():
        spec = by_original.get(key)
        if spec is None or not isinstance(value, torch.Tensor):
            unexpected.append(key)
            continue
        if tuple(value.shape) != spec.shape:
            mismatched.append((key, tuple(value.shape), spec.shape))
            out[spec.torch_name] = None  # present, so not also reported missing
            continue
        array = value.detach().cpu()
        array = array.float().numpy() if array.dtype == torch.bfloat16 else array.numpy()
        out[spec.torch_name] = array
    missing = [s.original_name or s.torch_name for s in specs if s.tied_to is None and s.torch_name not in out]
    if missing or unexpected or mismatched:
        raise WeightMismatchError(missing, unexpected, mismatched, f"original checkpoint {path}")
    for spec in specs:
        if spec.tied_to is not None and spec.torch_name in out:
            source = out[spec.tied_to]
            if not np.array_equal(out[spec.torch_name], source):
                raise UnsupportedCheckpointError(
                    f"{path}: pred_layer.proj.weight differs from embeddings.weight (trained with "
                    "share_inout_emb=False); XLM models here tie the output projection to the embeddings"
                )
            del out[spec.torch_name]
    return out


def read_bpe_codes(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Merges of a fastBPE codes file ('a b count' per line) or a merges.txt ('a b')."""
    from xlm.tokenizer import read_merges

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such BPE codes file: {path}")
    try:
        return read_merges(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not a BPE codes file: {err}") from None


def convert_original_checkpoint(
    checkpoint_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    codes_path: str | os.PathLike | None = None,
    *,
    part: str | None = None,
    format: str = "safetensors",
    force: bool = False,
    do_lowercase_and_remove_accent: bool = True,
    tokenizer_preprocessing: str = "original_xlm",
    config_overrides: Mapping[str, Any] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> str:
    """Convert an original XLM `.pth` into `output_dir` (written atomically); returns its path.

    The model is an `XLMWithLMHeadModel` when the checkpoint has its prediction layer, else an
    `XLMModel`. Without `codes_path` no merges.txt can be written, so the directory holds no
    tokenizer (a one-line warning is printed). The tokenizer config says
    `preprocessing="original_xlm"` (the original scripts' order, on which the model was trained)
    unless `tokenizer_preprocessing="transformers"` asks for transformers' order.
    """
    from xlm.tokenizer.original import check_preprocessing

    check_preprocessing(tokenizer_preprocessing)
    path = os.fspath(checkpoint_path)
    data = load_original_checkpoint(path)
    if "params" not in data:
        raise CheckpointError(f"{path} has no 'params': not an original XLM checkpoint")
    params = _params_dict(data["params"], path)
    if params.get("use_memory"):
        raise UnsupportedCheckpointError(
            f"{path}: trained with product-key memory layers (use_memory=True), which are not supported"
        )
    _, state = _model_state(data, part, path)
    config = config_from_params(params, state, **dict(config_overrides or {}))
    architecture = "XLMWithLMHeadModel" if any(k.startswith("pred_layer.") for k in state) else "XLMModel"
    config.architectures = [architecture]
    word2id = _check_dictionary(data, config.vocab_size, path)
    merges = read_bpe_codes(codes_path) if codes_path is not None else None
    weights = _original_weights(state, config, architecture, path)
    del data, state

    with atomic_directory(output_dir, force=force) as tmp:
        config.save_pretrained(tmp)
        save_state_dict(weights, tmp, config, architecture, format=format, progress=progress)
        vocab = original_vocab(word2id)
        with open(os.path.join(tmp, "vocab.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(vocab, indent=2, ensure_ascii=False) + "\n")
        if merges is not None:
            with open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as f:
                f.write("".join(f"{a} {b}\n" for a, b in merges))
            _write_tokenizer_config(tmp, config, do_lowercase_and_remove_accent, tokenizer_preprocessing)
        else:
            import warnings

            warnings.warn("no BPE codes given: the output has vocab.json but no merges.txt, so no tokenizer",
                          stacklevel=2)
    return os.path.abspath(os.fspath(output_dir))


def _write_tokenizer_config(directory: str, config: XLMConfig, lowercase: bool, preprocessing: str) -> None:
    """tokenizer_config.json and special_tokens_map.json, through our XLMTokenizer."""
    from xlm.tokenizer import XLMTokenizer

    tokenizer = XLMTokenizer(
        os.path.join(directory, "vocab.json"),
        os.path.join(directory, "merges.txt"),
        lang2id=config.lang2id,
        id2lang=config.id2lang,
        do_lowercase_and_remove_accent=lowercase,
        model_max_length=config.max_position_embeddings,
        preprocessing=preprocessing,
    )
    tokenizer.save_pretrained(directory)
