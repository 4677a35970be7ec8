"""Reduced-precision encoders (spacy_mlm.PrecisionTransformerModel.v1): every pipe runs on an int8 or
bf16 transformer with outputs close to fp32, the saved pipeline holds the reduced weights and
reloads to exactly the same outputs, the CLI writes a loadable pipeline, and training one fails
with the fix."""

import numpy
import pytest
import spacy
from click.testing import CliRunner
from spacy.training import Example

from spacy_mlm.cli import cli
from spacy_mlm.errors import SpacyMlmError
from spacy_mlm.precision import encoder_dtype, quantize_pipeline

from .test_ner_textcat import CAT_DATA, NER_DATA, cat_examples, ner_examples, train

TEXTS = ["paris is a [MASK] city in france", "the museum in [MASK] is old", "london and rome are large",
         "a quiet street near the river [MASK]"]


@pytest.fixture(scope="module")
def fp32_pipeline(bert_checkpoint, tmp_path_factory):
    """The five pipes on one transformer, briefly trained, saved to disk."""
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    for pipe in ("fill_mask", "trf_tagger_ner", "trf_textcat", "trf_similarity"):
        nlp.add_pipe(pipe)
    train(nlp, ner_examples(nlp) + cat_examples(nlp), 10)
    path = tmp_path_factory.mktemp("fp32") / "pipeline"
    nlp.to_disk(path)
    return path


def outputs(nlp, texts=TEXTS):
    docs = list(nlp.pipe(texts))
    return {
        "fill_mask": [[p["token"] for p in preds[0]] if preds else [] for preds in (d._.fill_mask for d in docs)],
        "fill_mask_scores": numpy.array([p["score"] for d in docs for preds in d._.fill_mask for p in preds]),
        "ents": [[(e.start, e.end, e.label_) for e in d.ents] for d in docs],
        "cats": numpy.array([[d.cats[k] for k in sorted(d.cats)] for d in docs]),
        "vectors": numpy.array([d.vector for d in docs]),
        "hidden": [numpy.array(d._.trf_data.model_output.last_hidden_state) for d in docs],
    }


def cosine(a, b):
    return float((a * b).sum() / numpy.linalg.norm(a) / numpy.linalg.norm(b))


@pytest.mark.parametrize("dtype", ["int8", "bf16"])
def test_every_pipe_runs_close_to_fp32_and_reloads_exactly(fp32_pipeline, dtype, tmp_path):
    fp32 = spacy.load(fp32_pipeline)
    reference = outputs(fp32)
    quantized = quantize_pipeline(fp32, dtype)
    assert encoder_dtype(quantized) == dtype and encoder_dtype(fp32) == "fp32"
    assert quantized.pipe_names == fp32.pipe_names
    assert outputs(fp32)["vectors"].tolist() == reference["vectors"].tolist()  # the input is left as it was
    got = outputs(quantized)
    for a, b in zip(got["hidden"], reference["hidden"]):
        assert a.dtype == numpy.float32 and a.shape == b.shape
        assert cosine(a, b) > 0.99
        assert not numpy.array_equal(a, b)  # it did run in reduced precision
    for a, b in zip(got["vectors"], reference["vectors"]):
        assert cosine(a, b) > 0.99
    assert numpy.abs(got["cats"] - reference["cats"]).max() < 0.05
    top1 = [p[:1] for p in got["fill_mask"]]
    assert sum(a == b for a, b in zip(top1, [p[:1] for p in reference["fill_mask"]])) >= len(TEXTS) - 1
    quantized.to_disk(tmp_path / "q")
    reloaded = spacy.load(tmp_path / "q")
    assert encoder_dtype(reloaded) == dtype
    again = outputs(reloaded)
    for key in ("fill_mask", "ents"):
        assert again[key] == got[key]
    for key in ("fill_mask_scores", "cats", "vectors"):
        assert numpy.array_equal(again[key], got[key]), key
    for a, b in zip(again["hidden"], got["hidden"]):
        assert numpy.array_equal(a, b)


def test_int8_pipeline_stores_int8_weights(fp32_pipeline, tmp_path):
    fp32 = spacy.load(fp32_pipeline)
    quantize_pipeline(fp32, "int8").to_disk(tmp_path / "int8")
    quantize_pipeline(fp32, "bf16").to_disk(tmp_path / "bf16")
    size = {p: (p / "transformer" / "model").stat().st_size for p in (fp32_pipeline, tmp_path / "int8",
                                                                      tmp_path / "bf16")}
    assert size[tmp_path / "int8"] < 0.45 * size[fp32_pipeline]
    assert size[tmp_path / "bf16"] < 0.9 * size[fp32_pipeline]
    encoder = spacy.load(tmp_path / "int8").get_pipe("transformer").model.transformer
    linears = [m for m in encoder.modules() if type(m).__name__ == "Linear" and m.__module__.startswith("torch.ao")]
    assert linears and all(m.weight().dtype.__str__() == "torch.qint8" for m in linears)
    assert type(encoder.get_input_embeddings()).__name__ == "Int8RowEmbedding"


def test_training_a_reduced_pipeline_names_the_fix(fp32_pipeline):
    nlp = quantize_pipeline(spacy.load(fp32_pipeline), "int8")
    examples = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA]
    with pytest.raises(SpacyMlmError, match="spacy-mlm quantize PIPELINE OUTPUT --dtype int8"):
        nlp.update(examples, sgd=nlp.create_optimizer())
    with pytest.raises(SpacyMlmError, match="train the fp32 pipeline|Train .* the fp32 pipeline"):
        nlp.get_pipe("fill_mask").update([Example.from_dict(nlp.make_doc(TEXTS[2]), {})])
    nlp.get_pipe("fill_mask").mlm_every = 4  # at the first update, not at the pass of the fourth
    with pytest.raises(SpacyMlmError, match="train the fp32 pipeline|Train .* the fp32 pipeline"):
        nlp.get_pipe("fill_mask").update([Example.from_dict(nlp.make_doc(TEXTS[2]), {})])
    with pytest.raises(SpacyMlmError, match="already int8"):
        quantize_pipeline(nlp, "bf16")


def test_fp16_is_a_clear_error_on_cpu(fp32_pipeline):
    with pytest.raises(SpacyMlmError, match="fp16, which runs on a GPU only"):
        quantize_pipeline(spacy.load(fp32_pipeline), "fp16")


def test_config_dtype_initializes_from_the_hf_checkpoint(bert_checkpoint):
    """dtype in the config: nlp.initialize() converts the checkpoint's encoder."""
    spans = {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 128, "stride": 96}
    model = {"@architectures": "spacy_mlm.PrecisionTransformerModel.v1", "get_spans": spans}
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**model, "name": str(bert_checkpoint), "dtype": "int8"}})
    nlp.add_pipe("trf_textcat")
    nlp.initialize(lambda: cat_examples(nlp))
    assert encoder_dtype(nlp) == "int8"
    assert sorted(nlp(CAT_DATA[0][0]).cats) == ["NEG", "POS"]
    with pytest.raises(SpacyMlmError, match="Unknown transformer dtype 'int4'"):
        nlp.add_pipe("transformer", name="t2", config={"model": {**model, "name": str(bert_checkpoint), "dtype": "int4"}})


def test_quantize_cli_writes_a_loadable_pipeline(fp32_pipeline, tmp_path):
    result = CliRunner().invoke(cli, ["quantize", str(fp32_pipeline), str(tmp_path / "out"), "--dtype", "int8"])
    assert result.exit_code == 0, result.output
    nlp = spacy.load(tmp_path / "out")
    assert encoder_dtype(nlp) == "int8"
    assert nlp.config["components"]["transformer"]["model"]["dtype"] == "int8"
    assert len(nlp(TEXTS[0])._.fill_mask[0]) == 5
