"""prepare_tf_dataset on Hugging Face `datasets`, and the collators it uses (as transformers' TF models)."""

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
datasets = pytest.importorskip("datasets")

import keras  # noqa: E402
from xlm_testing import tiny_config  # noqa: E402
import xlm  # noqa: E402
from xlm.tf_backend import TFXLMForSequenceClassification, TFXLMWithLMHeadModel  # noqa: E402

DATA = Path(xlm.__file__).parent / "data"
TEXTS = ["the cat sat on the mat .", "a dog .", "we went to the market in the morning and bought fish .",
         "hello world", "i am here", "it rained all day , so we stayed at home .", "yes", "no , thanks ."]


@pytest.fixture(scope="module")
def tokenizer():
    return xlm.XLMTokenizer.from_pretrained(str(DATA / "test_tokenizer"))


def classification_data(tokenizer):
    encoded = [tokenizer(text) for text in TEXTS]
    return datasets.Dataset.from_dict({
        "text": TEXTS,  # not an input: left out
        "input_ids": [e["input_ids"] for e in encoded],
        "attention_mask": [e["attention_mask"] for e in encoded],
        "label": [i % 2 for i in range(len(TEXTS))],
    })


def test_padded_batches_in_order_and_the_models_own_loss(tokenizer):
    keras.utils.set_random_seed(0)
    config = tiny_config(vocab_size=len(tokenizer), num_labels=2, n_langs=1, use_lang_emb=False)
    model = TFXLMForSequenceClassification(config)
    data = model.prepare_tf_dataset(classification_data(tokenizer), batch_size=3, shuffle=False, tokenizer=tokenizer)
    batches = list(data.as_numpy_iterator())
    assert len(batches) == 3  # not shuffled: the last, short batch is kept
    for i, (x, y) in enumerate(batches):
        expected = tokenizer(TEXTS[3 * i: 3 * i + 3], padding=True, return_tensors="np")
        assert sorted(x) == ["attention_mask", "input_ids"]
        np.testing.assert_array_equal(x["input_ids"], expected["input_ids"])
        np.testing.assert_array_equal(x["attention_mask"], expected["attention_mask"])
        np.testing.assert_array_equal(y, [j % 2 for j in range(3 * i, min(3 * i + 3, len(TEXTS)))])
    # fit / evaluate with no compiled loss: y goes to the model's own loss
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(data, epochs=2, verbose=0, shuffle=False).history["loss"]
    assert np.isfinite(history).all()
    per_batch = [float(model(x, labels=y).loss) for x, y in batches]
    weights = [len(y) for _, y in batches]
    np.testing.assert_allclose(model.evaluate(data, verbose=0), np.average(per_batch, weights=weights), rtol=1e-5)


def test_shuffled_batches_drop_the_remainder_and_equal_lengths_stack_without_a_tokenizer():
    config = tiny_config()
    model = TFXLMWithLMHeadModel(config)
    ids = np.random.default_rng(0).integers(14, config.vocab_size, size=(10, 7))
    data = datasets.Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})
    batches = list(model.prepare_tf_dataset(data, batch_size=4).as_numpy_iterator())
    assert len(batches) == 2  # shuffle=True drops the short last batch, as transformers
    seen = np.concatenate([x for x, _ in batches])
    assert seen.shape == (8, 7) and {tuple(r) for r in seen} <= {tuple(r) for r in ids}
    for x, y in batches:  # one input column: a tensor, not a dict; labels as y
        np.testing.assert_array_equal(x, y)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert np.isfinite(model.fit(model.prepare_tf_dataset(data, batch_size=4), verbose=0, shuffle=False).history["loss"]).all()


def test_refusals(tokenizer):
    model = TFXLMWithLMHeadModel(tiny_config())
    with pytest.raises(TypeError, match="needs a Hugging Face datasets.Dataset .* got dict"):
        model.prepare_tf_dataset({"input_ids": [[1, 2]]})
    with pytest.raises(ValueError, match=r"none of the dataset's batch keys \['score'\] is an input"):
        model.prepare_tf_dataset(datasets.Dataset.from_dict({"score": [1.0, 2.0]}))
    ragged = datasets.Dataset.from_dict({"input_ids": [[0, 5, 1], [0, 5, 6, 1]]})
    with pytest.raises(ValueError, match=r"cannot stack 'input_ids'.*\(3,\), \(4,\).*DataCollatorWithPadding"):
        model.prepare_tf_dataset(ragged, batch_size=2, shuffle=False)


def test_collators(tokenizer):
    features = [{**tokenizer(t), "label": i, "text": t} for i, t in enumerate(TEXTS[:3])]
    padded = xlm.DataCollatorWithPadding(tokenizer, return_tensors="np")([{k: v for k, v in f.items() if k != "text"}
                                                                         for f in features])
    expected = tokenizer(TEXTS[:3], padding=True, return_tensors="np")
    assert sorted(padded) == ["attention_mask", "input_ids", "labels", "token_type_ids"]
    np.testing.assert_array_equal(padded["input_ids"], expected["input_ids"])
    np.testing.assert_array_equal(padded["labels"], [0, 1, 2])
    stacked = xlm.DefaultDataCollator(return_tensors="np")([{"input_ids": [1, 2], "label_ids": [3, 4], "text": "x"}] * 2)
    assert sorted(stacked) == ["input_ids", "labels"] and stacked["labels"].tolist() == [[3, 4], [3, 4]]
    with pytest.raises(ValueError, match="cannot collate an empty list"):
        xlm.DefaultDataCollator()([])
