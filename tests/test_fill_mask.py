"""fill_mask: parity with transformers.pipeline("fill-mask"), edge cases and errors."""

import json
import shutil

import numpy
import pytest
import spacy
from transformers import AutoModel, pipeline

from spacy_mlm import SpacyMlmError

from .conftest import ARCH_TOKENIZER, make_nlp

TEXTS_ONE = ["The capital of france is {m}.", "{m} is a city in europe with old buildings"]
TEXTS_MANY = ["The {m} of france is {m} , a {m} city."]


@pytest.fixture(scope="module")
def hf_pipelines(checkpoints):
    return {arch: pipeline("fill-mask", model=str(path), device="cpu") for arch, path in checkpoints.items()}


@pytest.fixture(scope="module")
def nlps(checkpoints):
    return {arch: make_nlp(path, "fill_mask") for arch, path in checkpoints.items()}


def assert_same_predictions(ours, ref):
    assert [p["token"] for p in ours] == [p["token"] for p in ref]
    for o, r in zip(ours, ref):
        assert o["score"] == pytest.approx(r["score"], abs=1e-5)
        assert o["token_str"] == r["token_str"]


@pytest.mark.parametrize("arch", list(ARCH_TOKENIZER))
@pytest.mark.parametrize("targets", [None, ["paris", "london", "city", "zzzqx", "the"]])
def test_parity_single_mask(arch, targets, nlps, hf_pipelines, checkpoints):
    hf = hf_pipelines[arch]
    nlp = nlps[arch] if targets is None else make_nlp(checkpoints[arch], ("fill_mask", {"targets": targets}))
    for template in TEXTS_ONE:
        text = template.format(m=hf.tokenizer.mask_token)
        doc = nlp(text)
        ref = hf(text, targets=targets) if targets else hf(text)
        assert len(doc._.fill_mask) == 1
        assert_same_predictions(doc._.fill_mask[0], ref)
        mask_token = [t for t in doc if t.text == hf.tokenizer.mask_token]
        assert len(mask_token) == 1 and mask_token[0]._.fill_mask == doc._.fill_mask[0]
        top = doc._.fill_mask[0][0]
        assert top["sequence"] == text.replace(hf.tokenizer.mask_token, top["token_str"].strip())


@pytest.mark.parametrize("arch", list(ARCH_TOKENIZER))
def test_parity_several_masks(arch, nlps, hf_pipelines):
    hf = hf_pipelines[arch]
    for template in TEXTS_MANY:
        text = template.format(m=hf.tokenizer.mask_token)
        doc = nlps[arch](text)
        ref = hf(text, top_k=5)
        assert len(doc._.fill_mask) == text.count(hf.tokenizer.mask_token) == len(ref)
        for ours, theirs in zip(doc._.fill_mask, ref):
            assert_same_predictions(ours, theirs)


def test_scores_are_probabilities_over_whole_vocab(nlps):
    doc = nlps["bert"]("the [MASK] of paris")
    scores = [p["score"] for p in doc._.fill_mask[0]]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    # Targets restrict candidates without renormalising: their scores stay below the full top-1.
    nlp_t = make_nlp(nlps["bert"].get_pipe("transformer").model.attrs["name"], ("fill_mask", {"targets": ["paris"]}))
    restricted = nlp_t("the [MASK] of paris")._.fill_mask[0]
    assert len(restricted) == 1 and restricted[0]["score"] <= scores[0] + 1e-7


def test_top_k(checkpoints):
    nlp = make_nlp(checkpoints["bert"], ("fill_mask", {"top_k": 2}))
    assert len(nlp("a [MASK] city")._.fill_mask[0]) == 2


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "no mask here", "[MASK]", "[MASK] [MASK]"])
def test_edge_docs(text, nlps):
    nlp = nlps["bert"]
    doc = nlp(text)
    n_masks = sum(t.text == "[MASK]" for t in doc)
    assert len(doc._.fill_mask) == n_masks
    for entry in doc._.fill_mask:
        assert len(entry) == 5 and all(0 <= p["score"] <= 1 for p in entry)


def test_pipe_mixed_batch_matches_single_calls(nlps):
    nlp = nlps["roberta"]
    texts = ["", "a <mask> city", "the <mask> of paris is a <mask> city in the north " * 3, "   ", "<mask>", "no mask"]
    piped = list(nlp.pipe(texts, batch_size=4))
    for text, doc in zip(texts, piped):
        single = nlp(text)
        assert len(doc._.fill_mask) == len(single._.fill_mask)
        for a, b in zip(doc._.fill_mask, single._.fill_mask):
            assert [p["token"] for p in a] == [p["token"] for p in b]
            numpy.testing.assert_allclose([p["score"] for p in a], [p["score"] for p in b], atol=1e-5)


def test_long_doc_predicts_from_best_centred_window(checkpoints, hf_pipelines):
    """Masks near window borders use the window where they are best centred; the
    predictions equal HF's on that window's text."""
    window, stride = 32, 24
    config = {"get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": window, "stride": stride}}
    nlp = make_nlp(checkpoints["bert"], "fill_mask", transformer_config=config)
    hf = hf_pipelines["bert"]
    words = ("the city of paris is in the north of france " * 12).split()
    mask_at = [0, 23, 24, 31, 32, 47, 60, len(words) - 1]
    for i in mask_at:
        words[i] = "[MASK]"
    doc = nlp(" ".join(words))
    assert len(doc._.fill_mask) == len(mask_at)
    spans = [doc[s : s + window] for s in range(0, len(doc), stride) if s < len(doc)]
    spans = spans[: next(k for k, sp in enumerate(spans) if sp.end >= len(doc)) + 1]
    for entry, token_i in zip(doc._.fill_mask, mask_at):
        best, best_margin = None, -1
        for span in spans:
            if not span.start <= token_i < span.end:
                continue
            enc = hf.tokenizer(span.text)
            mask_positions = [p for p, t in enumerate(enc["input_ids"]) if t == hf.tokenizer.mask_token_id]
            k = [t.i for t in span if t.text == "[MASK]"].index(token_i)
            pos = mask_positions[k]
            margin = min(pos, len(enc["input_ids"]) - 1 - pos)
            if margin > best_margin:
                best, best_margin, best_k = span, margin, k
        ref = hf(best.text)
        ref = ref[best_k] if isinstance(ref[0], list) else ref
        assert_same_predictions(entry, ref)


def test_error_no_transformer():
    nlp = spacy.blank("en")
    nlp.add_pipe("fill_mask")
    with pytest.raises(SpacyMlmError, match="needs a 'transformer' component"):
        nlp.initialize()


def test_error_transformer_after_fill_mask(bert_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("fill_mask")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    with pytest.raises(SpacyMlmError, match="comes before 'transformer'"):
        nlp.initialize()


def test_error_missing_checkpoint(tmp_path, bert_checkpoint):
    missing = tmp_path / "nope"
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    nlp.add_pipe("fill_mask", config={"checkpoint": str(missing)})
    with pytest.raises(SpacyMlmError, match="nope.*does not exist"):
        nlp.initialize()


def test_error_checkpoint_without_mlm_head(tmp_path, bert_checkpoint):
    headless = tmp_path / "headless"
    AutoModel.from_pretrained(str(bert_checkpoint)).save_pretrained(str(headless))
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    nlp.add_pipe("fill_mask", config={"checkpoint": str(headless)})
    with pytest.raises(SpacyMlmError, match="has no masked-LM head"):
        nlp.initialize()


def test_error_vocab_mismatch(checkpoints):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(checkpoints["roberta"])}})
    nlp.add_pipe("fill_mask", config={"checkpoint": str(checkpoints["bert"])})
    with pytest.raises(SpacyMlmError, match="different checkpoints"):
        nlp.initialize()


def test_error_uninitialized():
    nlp = spacy.blank("en")
    nlp.add_pipe("fill_mask")
    with pytest.raises(SpacyMlmError, match=r"'fill_mask' has no MLM head yet: call nlp.initialize\(\)"):
        nlp.get_pipe("fill_mask").tied_head()


def _old_format_head(fill_mask):
    """The head as spacy-mlm wrote it before the one-format change, rebuilt by hand: its HF config,
    the tie flag, and safetensors of the state dict without encoder, tied decoder or aliases."""
    import torch
    from safetensors.torch import save

    head = fill_mask.tied_head()
    decoder, state, seen = head.decoder_weight.data_ptr(), {}, set()
    for key, value in head.mlm.state_dict().items():
        ptr = value.data_ptr()
        if key.startswith(head.mlm.base_model_prefix + ".") or ptr == decoder or ptr in seen:
            continue
        seen.add(ptr)
        state[key] = value.detach().cpu().contiguous()
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    return head.config.to_json_string(), head.tied, save(state)


def test_pipeline_saved_in_old_format_loads(nlps, tmp_path):
    """Pipelines saved by earlier versions load: the old to_bytes message (cfg, config, tied,
    head) and the old directory layout, both written here by hand."""
    import srsly

    nlp = nlps["bert"]
    text = "the capital of [MASK] is paris"
    expected = nlp(text)._.fill_mask[0]
    config_json, tied, weights = _old_format_head(nlp.get_pipe("fill_mask"))
    nlp.to_disk(tmp_path / "pipeline")
    fill_mask_dir = tmp_path / "pipeline" / "fill_mask"
    shutil.rmtree(fill_mask_dir)
    (fill_mask_dir / "head").mkdir(parents=True)
    srsly.write_json(fill_mask_dir / "cfg", nlp.get_pipe("fill_mask").cfg)
    (fill_mask_dir / "head" / "head.safetensors").write_bytes(weights)
    (fill_mask_dir / "head" / "config.json").write_text(config_json, encoding="utf8")
    (fill_mask_dir / "head" / "head.json").write_text(json.dumps({"tied": tied}), encoding="utf8")
    from_dir = spacy.load(tmp_path / "pipeline")
    assert_same_predictions(from_dir(text)._.fill_mask[0], expected)

    old_bytes = srsly.msgpack_dumps(
        {"cfg": nlp.get_pipe("fill_mask").cfg, "config": config_json, "tied": tied, "head": weights}
    )
    from_bytes = spacy.load(tmp_path / "pipeline")
    from_bytes.get_pipe("fill_mask").from_bytes(old_bytes)
    assert_same_predictions(from_bytes(text)._.fill_mask[0], expected)
    # The current format round-trips through bytes too.
    from_bytes.get_pipe("fill_mask").from_bytes(nlp.get_pipe("fill_mask").to_bytes())
    assert_same_predictions(from_bytes(text)._.fill_mask[0], expected)
