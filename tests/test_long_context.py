"""Long context: a tiny ModernBERT with 8,192 positions encodes a document of
more than 2,000 spaCy tokens as ONE window (spacy_mlm.model_max_spans.v1), and every pipe reads
it: fill_mask and the doc vector equal HF on the whole text, NER finds entities past token 512."""

import random

import numpy
import pytest
import spacy
from spacy.training import Example

from spacy_mlm import SpacyMlmError

from .conftest import WORDS

CITIES = ["paris", "london", "berlin", "madrid", "rome"]
# Countries and continents stay out: left unlabelled, they would teach the NER pipes that places are O.
FILLER = [w for w in WORDS if w not in CITIES and w not in ("france", "europe")]
N_TOKENS = 2200
LONG_SPANS = {"@architectures": "spacy_mlm.TransformerModel.v1",
              "get_spans": {"@span_getters": "spacy_mlm.model_max_spans.v1", "window": None}}


@pytest.fixture(scope="module")
def modernbert_8k(tmp_path_factory, tokenizer_dirs):
    """A tiny ModernBERT (64 wide, 2 layers) with 8,192 positions and the tests' WordPiece vocabulary."""
    import torch
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertForMaskedLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("long") / "modernbert"
    wordpiece = AutoTokenizer.from_pretrained(str(tokenizer_dirs["wordpiece"]))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece.backend_tokenizer, model_max_length=8192, model_input_names=["input_ids", "attention_mask"],
        **{k: getattr(wordpiece, k) for k in ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")},
    )
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(0)
    config = ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96,
        max_position_embeddings=8192, pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        global_attn_every_n_layers=2, local_attention=128, initializer_range=0.2,
    )
    ModernBertForMaskedLM(config).save_pretrained(str(path))
    return path


def long_text(mask_token=None):
    """N_TOKENS words; a city every ~150 words (many past token 512), a mask at word 1800."""
    rng = random.Random(0)
    words, ents, mask_at = [], [], 1800
    for i in range(N_TOKENS):
        words.append(rng.choice(CITIES) if i % 150 == 70 else rng.choice(FILLER))
    if mask_token:
        words[mask_at] = mask_token
    text, offset = "", 0
    for word in words:
        if word in CITIES:
            ents.append((offset, offset + len(word), "LOC"))
        text += word + " "
        offset += len(word) + 1
    return text.strip(), ents


def long_nlp(checkpoint, spans=LONG_SPANS):
    import spacy_mlm.spans  # noqa: F401  (registers spacy_mlm.model_max_spans.v1 without entry points)

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(checkpoint), **spans}})
    return nlp


@pytest.fixture(scope="module")
def trained(modernbert_8k):
    """trf_ner and trf_textcat on the one long-window encoder, trained a few steps on the long doc
    (one window) and a short one."""
    spacy.util.fix_random_seed(0)
    nlp = long_nlp(modernbert_8k)
    nlp.add_pipe("trf_ner", name="ner", config={"head_lr_scale": 10.0})  # as configs/full.cfg
    nlp.add_pipe("trf_textcat", name="textcat")
    text, ents = long_text()
    examples = [Example.from_dict(nlp.make_doc(text), {"entities": ents, "cats": {"CITY": 1.0, "NONE": 0.0}}),
                Example.from_dict(nlp.make_doc("a quiet street"), {"entities": [], "cats": {"CITY": 0.0, "NONE": 1.0}})]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(15):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    return nlp


def test_long_doc_is_one_window_encoded_as_hf_encodes_it(trained, modernbert_8k):
    from transformers import AutoTokenizer

    text, _ = long_text()
    doc = trained(text)
    assert len(doc) == N_TOKENS
    hf_ids = AutoTokenizer.from_pretrained(str(modernbert_8k))(text)["input_ids"]
    assert len(hf_ids) > 2000
    assert doc._.trf_data.wordpieces.input_ids.tolist() == [hf_ids]  # one window, nothing cut off


@pytest.fixture(scope="module")
def fresh(modernbert_8k):
    """fill_mask and trf_similarity untrained: they must equal HF on the checkpoint."""
    nlp = long_nlp(modernbert_8k)
    nlp.add_pipe("fill_mask")
    nlp.add_pipe("trf_similarity")
    nlp.initialize()
    return nlp


def test_fill_mask_past_512_equals_hf(fresh, modernbert_8k):
    from transformers import pipeline

    hf = pipeline("fill-mask", model=str(modernbert_8k), device="cpu")
    text, _ = long_text(hf.tokenizer.mask_token)
    doc = fresh(text)
    mask = [t for t in doc if t.text == hf.tokenizer.mask_token]
    assert len(mask) == 1 and mask[0].i == 1800
    ref = hf(text)
    assert [p["token"] for p in mask[0]._.fill_mask] == [p["token"] for p in ref]
    for ours, theirs in zip(mask[0]._.fill_mask, ref):
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)


def test_ner_entities_past_512_map_to_their_characters(trained):
    text, ents = long_text()
    doc = trained(text)
    assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == ents
    assert sum(e.start > 512 for e in doc.ents) >= 10
    assert all(text[e.start_char:e.end_char] == e.text and e.text in CITIES for e in doc.ents)


def test_tagger_ner_tags_every_token_of_the_long_doc(modernbert_8k):
    """trf_tagger_ner (untrained: training it to exactness on this doc is too slow for the suite)
    tags every token of the one window, and whatever it finds sits on its characters."""
    nlp = long_nlp(modernbert_8k)
    tagger = nlp.add_pipe("trf_tagger_ner")
    text, ents = long_text()
    nlp.initialize(lambda: [Example.from_dict(nlp.make_doc(text), {"entities": ents})])
    doc = nlp.get_pipe("transformer")(nlp.make_doc(text))
    tags = tagger.predict([doc])
    assert len(tags[0]) == N_TOKENS
    tagger.set_annotations([doc], tags)
    assert all(text[e.start_char:e.end_char] == e.text for e in doc.ents)


def test_textcat_reads_the_long_doc(trained):
    text, _ = long_text()
    cats = trained(text).cats
    assert set(cats) == {"CITY", "NONE"} and sum(cats.values()) == pytest.approx(1.0, abs=1e-5)


def test_doc_vector_equals_hf_mean_pooling_of_the_whole_text(fresh, modernbert_8k):
    import torch
    from transformers import AutoModel, AutoTokenizer

    text, _ = long_text()
    vector = fresh(text).vector
    tok = AutoTokenizer.from_pretrained(str(modernbert_8k))
    model = AutoModel.from_pretrained(str(modernbert_8k)).eval()
    with torch.no_grad():
        hidden = model(**tok(text, return_tensors="pt")).last_hidden_state[0]
    ref = torch.nn.functional.normalize(hidden.mean(0), dim=0).numpy()
    numpy.testing.assert_allclose(vector, ref, atol=1e-5)


def test_smaller_window_counts_wordpieces_and_cuts_nothing(modernbert_8k):
    """window = 300 wordpieces: several overlapping windows, each within 300 pieces with its
    specials, every token in one of them with its pieces (spacy-transformers truncated nothing)."""
    nlp = long_nlp(modernbert_8k, {**LONG_SPANS, "get_spans": {**LONG_SPANS["get_spans"], "window": 300}})
    nlp.initialize()
    text, _ = long_text()
    doc = nlp(text)
    trf = doc._.trf_data
    lengths = trf.wordpieces.attention_mask.sum(axis=1)
    assert len(lengths) >= 8 and lengths.max() <= 300 and lengths.max() > 250
    assert (trf.align.lengths > 0).all()


def test_span_getter_errors_name_the_fix(modernbert_8k):
    import spacy_mlm.spans  # noqa: F401

    example = [Example.from_dict(spacy.blank("en")("a city"), {})]
    nlp = long_nlp(modernbert_8k, {"get_spans": LONG_SPANS["get_spans"]})  # spacy-transformers' own architecture
    with pytest.raises(SpacyMlmError, match="spacy_mlm.TransformerModel.v1"):
        nlp.initialize(lambda: example)
    too_long = long_nlp(modernbert_8k, {**LONG_SPANS, "get_spans": {**LONG_SPANS["get_spans"], "window": 9000}})
    with pytest.raises(SpacyMlmError, match="exceeds the tokenizer's model_max_length"):
        too_long.initialize(lambda: example)


def test_init_config_windows_model_max(tmp_path):
    from click.testing import CliRunner
    from thinc.api import Config

    from spacy_mlm.cli import cli

    out = tmp_path / "ner.cfg"
    result = CliRunner().invoke(cli, ["init-config", "ner", str(out), "--windows", "model-max"])
    assert result.exit_code == 0, result.output
    model = Config().from_disk(out, interpolate=False)["components"]["transformer"]["model"]
    assert model["@architectures"] == "spacy_mlm.TransformerModel.v1"
    assert model["get_spans"] == {"@span_getters": "spacy_mlm.model_max_spans.v1", "window": None, "overlap": 0.25}
    result = CliRunner().invoke(cli, ["init-config", "similarity", str(tmp_path / "sim.cfg"), "--windows", "model-max"])
    assert isinstance(result.exception, SpacyMlmError) and "pair_spans" in str(result.exception)


def test_init_config_windows_auto_follows_the_checkpoint(tmp_path, modernbert_8k, bert_checkpoint):
    """The default --windows auto: model-max for the 8,192-position ModernBERT, strided for a 512-position BERT."""
    from click.testing import CliRunner
    from thinc.api import Config

    from spacy_mlm.cli import cli

    getters = {}
    for name, checkpoint in (("modernbert", modernbert_8k), ("bert", bert_checkpoint)):
        out = tmp_path / f"{name}.cfg"
        result = CliRunner().invoke(cli, ["init-config", "ner", str(out), "--base-model", str(checkpoint)])
        assert result.exit_code == 0, result.output
        getters[name] = Config().from_disk(out, interpolate=False)["components"]["transformer"]["model"]["get_spans"]
    assert getters["modernbert"]["@span_getters"] == "spacy_mlm.model_max_spans.v1"
    assert getters["bert"]["@span_getters"] == "spacy-transformers.strided_spans.v1"
