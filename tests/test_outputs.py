"""The output containers: dataclass fields that also behave as an ordered dict, as in transformers."""

import pickle

import pytest

from xlm.outputs import BaseModelOutput, MaskedLMOutput


def test_attribute_key_and_index_access():
    out = MaskedLMOutput(loss=1.5, logits="scores")
    assert out.logits == out["logits"] == out[1] == "scores"
    assert list(out.keys()) == ["loss", "logits"] and out.to_tuple() == (1.5, "scores")


def test_none_fields_are_not_entries():
    out = BaseModelOutput(last_hidden_state="h")
    assert list(out.keys()) == ["last_hidden_state"] and out.attentions is None
    with pytest.raises(KeyError):
        out["attentions"]


def test_setting_a_field_updates_both_views():
    out = MaskedLMOutput(logits="a")
    out.logits = "b"
    assert out["logits"] == "b"
    out["loss"] = 2.0
    assert out.loss == 2.0


@pytest.mark.parametrize("pairs", [
    lambda: ((k, v) for k, v in [("logits", "x"), ("loss", 3.0)]),  # generator, as tf.nest passes
    lambda: {"logits": "x", "loss": 3.0},
    lambda: [("logits", "x"), ("loss", 3.0)],
])
def test_built_from_key_value_pairs(pairs):
    out = MaskedLMOutput(pairs())
    assert out.loss == 3.0 and out.logits == "x"
    assert list(out.keys()) == ["loss", "logits"]  # declaration order, whatever order the pairs came in


def test_an_unknown_key_is_named():
    with pytest.raises(TypeError, match="MaskedLMOutput has no field 'bogus'"):
        MaskedLMOutput(iter([("bogus", 1)]))


def test_a_list_first_field_that_is_not_pairs_stays_a_value():
    out = MaskedLMOutput(loss=[1.0, 2.0])
    assert out.loss == [1.0, 2.0] and list(out.keys()) == ["loss"]


def test_pickle_round_trip():
    out = MaskedLMOutput(loss=1.0, logits=[1, 2])
    again = pickle.loads(pickle.dumps(out))
    assert type(again) is MaskedLMOutput and again.to_tuple() == out.to_tuple()
