"""XLMConfig against transformers 4.57.6's XLMConfig: fields, defaults, config.json both ways."""

import json
import subprocess
import sys

import pytest
import transformers

from xlm import XLMConfig
from xlm.config import DEFAULT_ASM_CUTOFFS, DEFAULT_ASM_DIV_VALUE

# transformers' fields that XLM models read (PretrainedConfig's generation settings aside).
XLM_FIELDS = [
    "vocab_size", "emb_dim", "n_layers", "n_heads", "dropout", "attention_dropout", "gelu_activation",
    "sinusoidal_embeddings", "causal", "asm", "n_langs", "use_lang_emb", "max_position_embeddings",
    "embed_init_std", "layer_norm_eps", "init_std", "bos_index", "eos_index", "pad_index", "unk_index",
    "mask_index", "is_encoder", "summary_type", "summary_use_proj", "summary_activation",
    "summary_proj_to_labels", "summary_first_dropout", "start_n_top", "end_n_top", "mask_token_id",
    "lang_id", "pad_token_id", "bos_token_id", "num_labels", "id2label", "label2id",
    "output_attentions", "output_hidden_states", "return_dict", "problem_type", "eos_token_id",
]


def test_defaults_equal_transformers():
    ours, theirs = XLMConfig(), transformers.XLMConfig()
    for field in XLM_FIELDS:
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.asm_cutoffs == list(DEFAULT_ASM_CUTOFFS) == [8000, 20000]
    assert ours.asm_div_value == DEFAULT_ASM_DIV_VALUE == 4.0
    assert ours.embed_init_std == 2048**-0.5


def test_aliases():
    config = XLMConfig(hidden_size=64, num_attention_heads=8, num_hidden_layers=3, n_words=500)
    assert (config.emb_dim, config.n_heads, config.n_layers, config.vocab_size) == (64, 8, 3, 500)
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers, config.n_words) == (64, 8, 3, 500)
    config.hidden_size = 32
    assert config.emb_dim == 32


def _kwargs():
    return dict(
        vocab_size=120, emb_dim=32, n_layers=2, n_heads=4, n_langs=3, causal=True,
        lang2id={"de": 0, "en": 1, "fr": 2}, id2lang={0: "de", 1: "en", 2: "fr"},
        id2label={0: "no", 1: "yes", 2: "maybe"}, summary_type="last", summary_activation="tanh",
    )


def test_transformers_reads_what_we_write(tmp_path):
    ours = XLMConfig(**_kwargs(), custom_field=[1, 2])
    ours.save_pretrained(tmp_path)
    theirs = transformers.XLMConfig.from_pretrained(tmp_path)
    for field in XLM_FIELDS:
        assert getattr(theirs, field) == getattr(ours, field), field
    assert theirs.lang2id == ours.lang2id
    assert {int(k): v for k, v in theirs.id2lang.items()} == ours.id2lang
    assert theirs.custom_field == [1, 2]


def test_we_read_what_transformers_writes(tmp_path):
    theirs = transformers.XLMConfig(**_kwargs(), custom_field="kept")
    theirs.save_pretrained(tmp_path)
    ours = XLMConfig.from_pretrained(tmp_path)
    for field in XLM_FIELDS:
        if field == "label2id" and theirs.label2id is None:
            continue  # transformers leaves label2id unset when only id2label is given
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.label2id == {"no": 0, "yes": 1, "maybe": 2}
    assert ours.id2lang == {0: "de", 1: "en", 2: "fr"}  # int keys after the JSON round trip
    assert ours.id2label == {0: "no", 1: "yes", 2: "maybe"}
    assert ours.custom_field == "kept"
    # Unknown keys survive our own round trip too.
    ours.save_pretrained(tmp_path / "again")
    data = json.loads((tmp_path / "again" / "config.json").read_text())
    assert data["custom_field"] == "kept" and data["model_type"] == "xlm"
    assert XLMConfig.from_pretrained(tmp_path / "again") == ours


def test_dict_round_trip():
    config = XLMConfig(**_kwargs())
    again = XLMConfig.from_dict(json.loads(config.to_json_string()))
    assert again == config and again.id2lang == config.id2lang


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(emb_dim=30, n_heads=4), "emb_dim (30) must be divisible by n_heads (4)"),
        (dict(n_langs=0), "n_langs must be a positive integer"),
        (dict(vocab_size=-5), "vocab_size must be a positive integer"),
        (dict(n_layers=-1), "n_layers must be a non-negative integer"),
        (dict(n_langs=2, lang2id={"en": 0}), "lang2id has 1 languages but n_langs is 2"),
        (dict(n_langs=1, id2lang={0: "en", 1: "fr"}), "id2lang has 2 languages but n_langs is 1"),
        (dict(n_langs=2, lang2id={"en": 0, "fr": 1}, id2lang={0: "fr", 1: "en"}), "lang2id and id2lang disagree"),
        (dict(summary_type="attn"), "summary_type must be one of last, first, mean, cls_index"),
        (dict(asm=True, vocab_size=100, asm_cutoffs=[50, 40]), "asm_cutoffs must be strictly increasing"),
        (dict(asm=True, vocab_size=100), "asm_cutoffs must be strictly increasing integers in (0, vocab_size=100)"),
        (dict(num_labels=3, id2label={0: "a"}), "num_labels=3 disagrees with id2label"),
        (dict(vocab_size=4), "mask_index=5 is outside the vocabulary [0, 4)"),
    ],
)
def test_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        XLMConfig(**kwargs)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        XLMConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        XLMConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type 'bert'"):
        XLMConfig.from_pretrained(tmp_path)


def test_import_needs_no_framework(tmp_path):
    # Hide torch and tensorflow: `import xlm`, the config and the tokenizer class must still load,
    # and asking for a model class gives the one-line install hint.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'tensorflow', 'keras', 'tf_keras'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import xlm\n"
        "xlm.XLMConfig(); xlm.XLMTokenizer\n"
        "for name in ('XLMModel', 'TFXLMModel'):\n"
        "    try:\n"
        "        getattr(xlm, name)\n"
        "    except ImportError as err:\n"
        "        print(str(err).splitlines()[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "pip install 'xlm[torch]'" in lines[0]
    assert "pip install 'xlm[tf]'" in lines[1]
