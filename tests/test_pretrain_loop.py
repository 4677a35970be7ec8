"""The pretraining loop end to end: CLI contract, resume, bad input, head-less checkpoints, scoring."""

import json
import warnings

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForMaskedLM

from spacy_mlm.cli import cli
from spacy_mlm.errors import SpacyMlmError
from spacy_mlm.pretrain.loop import pretrain
from spacy_mlm.pretrain.model import FreshHeadWarning, SparseMLM, load_mlm_model
from spacy_mlm.pretrain.score import pseudo_perplexity

from .pretrain_fixtures import CONFIG, PRECISIONS, SMALL, overrides, sentences, stopped_run, write_lines

pytest_plugins = ["tests.pretrain_fixtures"]


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_cli_contract(tmp_path, pt_corpus):
    train, dev = pt_corpus
    runner = CliRunner()
    r = runner.invoke(cli, ["tokenizer", str(train), str(tmp_path / "tok"), "--vocab-size", "2000"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["init-model", str(tmp_path / "m"), "--tokenizer", str(tmp_path / "tok"),
                            "--arch", "bert", "--size", "tiny"])
    assert r.exit_code == 0, r.output
    extra = [x for k, v in SMALL.items() for x in (f"--{k}", str(v))]
    r = runner.invoke(cli, ["pretrain", str(CONFIG), str(tmp_path / "out"), "--paths.train", str(train),
                            "--paths.dev", str(dev), "--paths.base_model", str(tmp_path / "m"),
                            "--training.max_steps", "12", "--training.eval_frequency", "4", *extra])
    assert r.exit_code == 0, r.output
    lines = metrics(tmp_path / "out")
    train_lines = [m for m in lines if "loss" in m]
    evals = [m for m in lines if "eval_loss" in m]
    assert [m["step"] for m in train_lines] == list(range(1, 13))
    assert [m["step"] for m in evals] == [4, 8, 12]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert 0 <= evals[-1]["eval_accuracy"] <= 1 and evals[-1]["eval_perplexity"] > 1
    final = tmp_path / "out" / "final"
    AutoModelForMaskedLM.from_pretrained(final)
    # It works as the spacy-transformers model name, and fill_mask uses its head.
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(final)}})
    nlp.add_pipe("fill_mask")
    nlp.initialize()
    doc = nlp("the capital of [MASK] is paris")
    assert len(doc._.fill_mask) == 1 and len(doc._.fill_mask[0]) == 5
    # score: last line is the pseudo-perplexity.
    r = runner.invoke(cli, ["score", str(final), str(dev), "--max-docs", "5"])
    assert r.exit_code == 0, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("pseudo_perplexity: ") and float(last.split()[1]) > 1


def test_resume_reaches_the_same_weights(tmp_path, pt_corpus, pt_model):
    train, dev = pt_corpus
    o = overrides(train, dev, pt_model, training__max_steps=8, training__eval_frequency=4,
                  training__checkpoint_frequency=2, training__keep_checkpoints=2)
    full = pretrain(CONFIG, tmp_path / "full", o)
    stopped_run(tmp_path / "cut", o, after_step=5)
    ckpts = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir())
    assert ckpts == ["step_00000002", "step_00000004"]  # keep last 2, no temp dirs left
    with pytest.raises(SpacyMlmError, match="already holds a different run"):
        pretrain(CONFIG, tmp_path / "cut", o)
    resumed = pretrain(CONFIG, tmp_path / "cut", o, resume=True)
    a, b = load_file(str(full / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    # The log of the resumed run equals the uninterrupted one (lines after the checkpoint are replaced).
    la, lb = metrics(tmp_path / "full"), metrics(tmp_path / "cut")
    assert [m["step"] for m in la] == [m["step"] for m in lb]
    assert [m.get("loss") for m in la] == pytest.approx([m.get("loss") for m in lb], abs=1e-6)
    # A different config cannot resume; --force starts over.
    o2 = {**o, "training.learning_rate": 0.1}
    with pytest.raises(SpacyMlmError, match="learning_rate"):
        pretrain(CONFIG, tmp_path / "cut", o2, resume=True)
    pretrain(CONFIG, tmp_path / "cut", {**o2, "training.max_steps": 2}, force=True)
    assert max(m["step"] for m in metrics(tmp_path / "cut")) == 2


def test_sparse_head_equals_full_model(pt_model):
    model, _ = load_mlm_model(str(pt_model))
    model.eval()
    ids = torch.randint(5, 100, (3, 16))
    attention = torch.ones_like(ids)
    positions = torch.rand(3, 16) < 0.3
    full = model(input_ids=ids, attention_mask=attention).logits[positions]
    sparse = SparseMLM(model)(ids, attention, positions)
    torch.testing.assert_close(sparse, full)


def test_headless_checkpoint_gets_tied_fresh_head(tmp_path, pt_corpus, pt_model):
    AutoModel.from_pretrained(pt_model).save_pretrained(tmp_path / "encoder")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(pt_model).save_pretrained(tmp_path / "encoder")
    with pytest.warns(FreshHeadWarning, match="no masked-LM head"):
        model, _ = load_mlm_model(str(tmp_path / "encoder"))
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    encoder = AutoModel.from_pretrained(tmp_path / "encoder")
    torch.testing.assert_close(model.get_input_embeddings().weight, encoder.get_input_embeddings().weight)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FreshHeadWarning)
        final = pretrain(CONFIG, tmp_path / "out", overrides(*pt_corpus, tmp_path / "encoder",
                                                             training__max_steps=2, training__eval_frequency=2))
    _, info = AutoModelForMaskedLM.from_pretrained(final, output_loading_info=True)
    assert info["missing_keys"] == []


def test_vocab_mismatch_is_an_error(tmp_path, pt_corpus, pt_model):
    from spacy_mlm.pretrain.tokenizer import train_tokenizer

    train_tokenizer(sentences(200) + ["zebra quokka axolotl"] * 5, tmp_path / "big", vocab_size=400)
    o = overrides(*pt_corpus, pt_model, training__max_steps=1)
    o["paths.tokenizer"] = str(tmp_path / "big")
    with pytest.raises(SpacyMlmError, match="vocabulary mismatch"):
        pretrain(CONFIG, tmp_path / "out", o)


def test_empty_and_tiny_corpora(tmp_path, pt_corpus, pt_model):
    empty = write_lines(tmp_path / "empty.txt", [""])
    with pytest.raises(SpacyMlmError, match="empty"):
        pretrain(CONFIG, tmp_path / "a", overrides(empty, pt_corpus[1], pt_model, training__max_steps=1))
    # Smaller than one batch (8 sequences of 32): batches wrap around the corpus, training runs.
    tiny = write_lines(tmp_path / "tiny.txt", ["the capital of france is paris", "rome is a city"])
    final = pretrain(CONFIG, tmp_path / "b", overrides(tiny, pt_corpus[1], pt_model, training__max_steps=3,
                                                       training__eval_frequency=3))
    assert final.is_dir() and len([m for m in metrics(tmp_path / "b") if "loss" in m]) == 3


def test_nan_loss_names_step_and_checkpoint(tmp_path, pt_corpus, pt_model):
    def poison(step, _):
        if step == 2:  # after the step-2 checkpoint: break the weights
            model_params = poison.model.parameters()
            next(model_params).data.fill_(float("nan"))

    import spacy_mlm.pretrain.loop as loop

    original = loop.load_mlm_model

    def capture(*args, **kwargs):
        poison.model, tok = original(*args, **kwargs)
        return poison.model, tok

    loop.load_mlm_model = capture
    try:
        with pytest.raises(SpacyMlmError, match=r"Loss is nan at step 3\. Last good checkpoint: .*step_00000002"):
            pretrain(CONFIG, tmp_path / "out", overrides(*pt_corpus, pt_model, training__max_steps=6,
                                                         training__checkpoint_frequency=2), on_step=poison)
    finally:
        loop.load_mlm_model = original


def test_pseudo_perplexity_batched_equals_sequential(pt_model):
    texts = sentences(3, seed=9)
    batched = pseudo_perplexity(str(pt_model), texts, batch_size=64)
    # Reference: one forward of the full model per masked token.
    from transformers import AutoTokenizer

    model, tok = AutoModelForMaskedLM.from_pretrained(pt_model).eval(), AutoTokenizer.from_pretrained(pt_model)
    total, n = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = tok(text)["input_ids"]
            for i in range(1, len(ids) - 1):
                masked = list(ids)
                masked[i] = tok.mask_token_id
                logits = model(input_ids=torch.tensor([masked])).logits[0, i]
                total += float(torch.log_softmax(logits, -1)[ids[i]])
                n += 1
    assert batched["tokens"] == n
    assert batched["pseudo_log_likelihood"] == pytest.approx(total, rel=1e-4)
    assert pseudo_perplexity(str(pt_model), texts, batch_size=5)["pseudo_perplexity"] == pytest.approx(
        batched["pseudo_perplexity"], rel=1e-5)


def test_pseudo_perplexity_of_a_pipeline_matches_its_checkpoint(tmp_path, pt_model):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(pt_model)}})
    nlp.add_pipe("fill_mask")
    nlp.initialize()
    nlp.to_disk(tmp_path / "pipeline")
    texts = sentences(3, seed=9)
    a = pseudo_perplexity(tmp_path / "pipeline", texts)
    b = pseudo_perplexity(str(pt_model), texts)
    assert a["tokens"] == b["tokens"]
    assert a["pseudo_perplexity"] == pytest.approx(b["pseudo_perplexity"], rel=1e-4)


def test_whole_word_masking_jsonl_bf16_grad_accum(tmp_path, pt_corpus, pt_model):
    """Other registered functions and settings run through the same loop."""
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps({"text": t}) for t in sentences(100, seed=3)))
    cfg = tmp_path / "wwm.cfg"
    cfg.write_text(CONFIG.read_text().replace('@misc = "spacy_mlm.TokenMasking.v1"',
                                              '@misc = "spacy_mlm.WholeWordMasking.v1"\nword_boundaries = "spacy"'))
    o = overrides(train, None, pt_model, training__max_steps=3, training__eval_frequency=3,
                  training__precision="bf16", training__grad_accum=2, training__schedule="cosine")
    final = pretrain(cfg, tmp_path / "out", o)
    evals = [m for m in metrics(tmp_path / "out") if "eval_loss" in m]
    assert final.is_dir() and len(evals) == 1 and evals[0]["eval_masked_tokens"] > 0  # held-out split of train


# (loss rel, grad-norm rel, weight atol) per precision, ~20x what bf16 showed on an AVX512-BF16 CPU
# (2e-7, 5e-5, 6e-5); a wrongly scaled accumulation is off by 2x.
GRAD_ACCUM_TOLERANCE = {"fp32": (1e-5, 1e-4, 1e-5), "bf16": (1e-3, 1e-3, 1e-3)}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_grad_accum_equals_one_batch(tmp_path, pt_corpus, pt_model, precision):
    """2 micro-batches of 4 sequences = 1 batch of 8 (same data, same masks): same losses, gradient
    norms and weights, in fp32 and in bf16 autocast. Dropout off: its masks are drawn per forward pass."""
    o = overrides(*pt_corpus, pt_model, training__max_steps=3, training__eval_frequency=0,
                  model__dropout=0.0, system__threads=1, training__precision=precision)
    one = pretrain(CONFIG, tmp_path / "one", o)
    two = pretrain(CONFIG, tmp_path / "two", {**o, "training.grad_accum": 2})
    m_one, m_two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    loss_rel, norm_rel, weight_atol = GRAD_ACCUM_TOLERANCE[precision]
    # The logged loss and the gradient norm (before clipping) show a wrongly scaled sum, which
    # Adam's update would hide in the weights.
    assert [m["loss"] for m in m_one] == pytest.approx([m["loss"] for m in m_two], rel=loss_rel)
    assert [m["grad_norm"] for m in m_one] == pytest.approx([m["grad_norm"] for m in m_two], rel=norm_rel)
    start = load_file(str(pt_model / "model.safetensors"))
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=weight_atol, rtol=0)
    assert max(float((a[k] - start[k]).abs().max()) for k in start if k in a) > 1e-4  # training moved them
