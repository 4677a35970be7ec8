"""Every architecture end to end, tiny and random: `spacy-mlm tokenizer` / `init-model`, pretraining with
token, whole-word and span masking and --resume, the five pipes on the shared transformer (fill_mask
and trf_similarity parity with HF, trf_ner / trf_tagger_ner / trf_textcat training), to_disk /
spacy.load, and a `spacy package` wheel of each, all installed with one pip call into the one
fresh venv of the session. The README's table of architectures lists what this module checks."""

import inspect
import json
import random

import numpy
import pytest
import spacy
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer, pipeline

from spacy_mlm import SpacyMlmError
from spacy_mlm.cli import cli
from spacy_mlm.mlm_data.masking import span_masking, whole_word_masking
from spacy_mlm.mlm_data.packing import Packer, collate
from spacy_mlm.pretrain.init_model import ARCH_TOKENIZERS, ARCHS, init_model
from spacy_mlm.pretrain.loop import pretrain

from .conftest import corpus, make_nlp, run
from .pretrain_fixtures import CONFIG, SMALL, sentences, stopped_run, write_lines
from .test_ner_textcat import cat_examples, ner_examples

KINDS = ("wordpiece", "bpe", "unigram")
MLM_CLASSES = {
    "bert": "BertForMaskedLM", "roberta": "RobertaForMaskedLM", "distilbert": "DistilBertForMaskedLM",
    "modernbert": "ModernBertForMaskedLM", "xlm-roberta": "XLMRobertaForMaskedLM",
    "deberta-v2": "DebertaV2ForMaskedLM", "electra": "ElectraForMaskedLM", "albert": "AlbertForMaskedLM",
}
# Text without spaces between words: spaCy's zh tokenizer splits it (the xx one would not).
ZH_WORDS = "北京 上海 中国 首都 城市 大 小 的 是 在 有 很多 人 老 新 河 桥 博物馆 公园 街道 市场 火车站".split()
NO_DROPOUT = {arch: {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
              for arch in ("bert", "roberta", "xlm-roberta", "deberta-v2", "electra")}
NO_DROPOUT["distilbert"] = {"dropout": 0.0, "attention_dropout": 0.0}  # ModernBERT's and ALBERT's are 0
PROBES = ["paris is a {m} city in france", "the museum in {m} is old and {m}"]


def zh_sentences(n: int, seed: int = 0):
    rng = random.Random(seed)
    return ["".join(rng.choice(ZH_WORDS) for _ in range(rng.randint(4, 10))) + "。" for _ in range(n)]


@pytest.fixture(scope="session")
def arch_root(tmp_path_factory):
    return tmp_path_factory.mktemp("architectures")


@pytest.fixture(scope="session")
def arch_tokenizers(arch_root):
    """kind -> tokenizer dir, trained by the CLI on English and some Chinese."""
    text = write_lines(arch_root / "tokenizer_corpus.txt", corpus() + zh_sentences(100))
    out = {}
    for kind in KINDS:
        result = CliRunner().invoke(cli, ["tokenizer", str(text), str(arch_root / kind), "--vocab-size", "300",
                                          "--kind", kind], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        out[kind] = arch_root / kind
    return out


@pytest.fixture(scope="session")
def arch_checkpoints(arch_root, arch_tokenizers):
    """arch -> tiny MLM checkpoint with its usual tokenizer kind. A wide init range makes predictions
    peaked, so top-k orders are not decided by float noise; no dropout, so a few training steps show
    their effect on the loss."""
    out = {}
    for arch in ARCHS:
        init_model(arch_root / f"ckpt_{arch}", arch_tokenizers[ARCH_TOKENIZERS[arch][0]], arch=arch, size="tiny",
                   max_length=128, initializer_range=0.2, **NO_DROPOUT.get(arch, {}))
        out[arch] = arch_root / f"ckpt_{arch}"
    return out


# -- 1. init-model and tokenizer -------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_init_model_cli(arch, arch_tokenizers, tmp_path):
    kind = ARCH_TOKENIZERS[arch][0]
    result = CliRunner().invoke(cli, ["init-model", str(tmp_path / "m"), "--tokenizer", str(arch_tokenizers[kind]),
                                      "--arch", arch, "--max-length", "64"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = AutoConfig.from_pretrained(tmp_path / "m")
    assert config.model_type == arch
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "m")
    assert type(model).__name__ == MLM_CLASSES[arch]
    if arch == "albert":  # factorised embeddings, one layer shared by all layers
        assert config.embedding_size < config.hidden_size and config.num_hidden_groups == 1
        assert len(model.albert.encoder.albert_layer_groups) == 1 and config.num_hidden_layers == 2
    # The tokenizer loads back through AutoTokenizer with no sentencepiece .model file.
    assert not list((tmp_path / "m").glob("*.model"))
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert tok.mask_token is not None and len(tok) == config.vocab_size
    ids = tok("paris is a city")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.decode(ids, skip_special_tokens=True).strip() == "paris is a city"
    if kind == "unigram":
        assert tok.tokenize("paris is")[0].startswith("▁")
    # A tokenizer kind that does not fit: the error names the --kind to train.
    for other in set(KINDS) - set(ARCH_TOKENIZERS[arch]):
        with pytest.raises(SpacyMlmError, match=rf"--arch {arch} needs .*--kind {kind}"):
            init_model(tmp_path / "x", arch_tokenizers[other], arch=arch)


# -- 2. pretraining: token, whole-word and span masking, resume -----------------------------------


MASKINGS = {"token": "spacy_mlm.TokenMasking.v1", "whole-word": "spacy_mlm.WholeWordMasking.v1",
            "span": "spacy_mlm.SpanMasking.v1"}


@pytest.fixture(scope="session")
def pretrain_corpus(arch_root):
    return (write_lines(arch_root / "pt_train.txt", sentences(40, seed=1)),
            write_lines(arch_root / "pt_dev.txt", sentences(8, seed=2)))


def pretrain_overrides(corpus_files, checkpoint, masking, steps=2):
    train, dev = corpus_files
    return {"paths.train": str(train), "paths.dev": str(dev), "paths.base_model": str(checkpoint), **SMALL,
            "training.max_steps": steps, "training.eval_frequency": 2, "training.checkpoint_frequency": 1,
            "training.eval_sequences": 4, "training.batch_tokens": 128, "masking.@misc": MASKINGS[masking],
            "system.threads": 1}


@pytest.mark.parametrize("arch", ARCHS)
def test_pretrain_maskings_and_resume(arch, arch_checkpoints, pretrain_corpus, tmp_path, restore_torch_threads,
                                      capsys):
    finals = {}
    for masking in MASKINGS:
        out = tmp_path / masking
        finals[masking] = pretrain(CONFIG, out, pretrain_overrides(pretrain_corpus, arch_checkpoints[arch], masking))
        logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in logged if "loss" in m][-1] == 2
        assert all(numpy.isfinite(m["loss"]) for m in logged if "loss" in m)
        assert type(AutoModelForMaskedLM.from_pretrained(finals[masking])).__name__ == MLM_CLASSES[arch]
    # Stopped after step 1 and resumed: the same weights as the uninterrupted span-masking run.
    o = pretrain_overrides(pretrain_corpus, arch_checkpoints[arch], "span")
    stopped_run(tmp_path / "cut", o, after_step=1)
    capsys.readouterr()
    resumed = pretrain(CONFIG, tmp_path / "cut", o, resume=True)
    assert "(step 1)" in capsys.readouterr().out
    a, b = load_file(str(finals["span"] / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)


@pytest.fixture
def restore_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


WORD_TEXTS = ["paris, london's museum... unbelievably  extraordinary bridges!", "the riverbridges of londonparis",
              "don't stop: north-east (berlin) 2024"] + sentences(6, seed=3)


@pytest.mark.parametrize("kind,lang", [("wordpiece", "xx"), ("bpe", "xx"), ("unigram", "xx"), ("unigram", "zh"),
                                       ("bpe", "zh")])
@pytest.mark.parametrize("masker", [whole_word_masking, span_masking])
def test_whole_word_masking_masks_every_piece_of_a_word(kind, lang, masker, arch_tokenizers):
    """Counted from the characters, not from the word ids under test: a spaCy token whose pieces are
    partly masked fails. SentencePiece's `▁`, byte-level BPE's `Ġ` and text without spaces included."""
    tok = AutoTokenizer.from_pretrained(arch_tokenizers[kind])
    texts = zh_sentences(12, seed=4) if lang == "zh" else WORD_TEXTS
    nlp = spacy.blank(lang)
    seqs = []
    for text in texts:  # one doc per sequence: positions map back to the doc's pieces
        (seq,) = Packer(lambda text=text: iter([text]), tok, 256, word_boundaries="spacy", word_lang=lang).epoch(0)
        seqs.append(seq)
    batch = collate(seqs, tok.pad_token_id, sorted(set(tok.all_special_ids)))
    masked_words = multi_piece_masked = words_total = 0
    masked_pieces_across_words = set()
    # Several draws: on a tiny vocabulary a single one may mask no word of several pieces.
    for seed in range(4):
        _, labels = masker(rate=0.3, lang=lang)(batch["input_ids"], batch["special"], batch["word_ids"],
                                                 mask_token_id=tok.mask_token_id, vocab_size=len(tok),
                                                 generator=torch.Generator().manual_seed(seed))
        for row, text in enumerate(texts):
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            offsets, unknown = enc["offset_mapping"], [i == tok.unk_token_id for i in enc["input_ids"]]
            masked = (labels[row, 1 : 1 + len(offsets)] != -100).tolist()
            spans = []
            for start, end in offsets:
                piece = text[start:end]
                first = start + len(piece) - len(piece.lstrip())
                spans.append((first, start + len(piece.rstrip())))
            for word in nlp(text):
                if word.is_space:
                    continue
                # Unknown pieces are special tokens, never predicted (as in HF's collator).
                pieces = [i for i, (s, e) in enumerate(spans) if s < word.idx + len(word) and e > word.idx and not unknown[i]]
                if not pieces:
                    continue
                flags = {masked[i] for i in pieces}
                assert len(flags) == 1, (text, word.text, [tok.convert_ids_to_tokens(seqs[row][0])])
                words_total += 1
                masked_words += masked[pieces[0]]
                multi_piece_masked += masked[pieces[0]] and len(pieces) > 1
                # A piece across several spaCy words (北京 split into characters) makes them one word.
                masked_pieces_across_words.update((seed, row, i) for i in pieces if masked[i] and (
                    spans[i][0] < word.idx or spans[i][1] > word.idx + len(word)))
    # Not vacuous: words of several pieces (or pieces of several words) were masked, words were told apart.
    assert multi_piece_masked + len(masked_pieces_across_words) > 0 and 0 < masked_words < words_total
    if lang == "zh":
        assert words_total > 5 * len(texts)  # characters, not one word per sentence


# -- 3. the five pipes ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_fill_mask_and_similarity_parity_with_hf(arch, arch_checkpoints):
    path = arch_checkpoints[arch]
    nlp = make_nlp(path, "fill_mask", ("trf_similarity", {"normalize": False}))
    hf = pipeline("fill-mask", model=str(path), device="cpu")
    for template in PROBES:
        text = template.format(m=hf.tokenizer.mask_token)
        doc = nlp(text)
        ref = hf(text)
        ref = ref if isinstance(ref[0], list) else [ref]
        assert len(doc._.fill_mask) == len(ref) == text.count(hf.tokenizer.mask_token)
        for ours, theirs in zip(doc._.fill_mask, ref):
            assert [p["token"] for p in ours] == [p["token"] for p in theirs]
            assert [p["score"] for p in ours] == pytest.approx([p["score"] for p in theirs], abs=1e-5)
            assert [p["token_str"] for p in ours] == [p["token_str"] for p in theirs]
    tok, model = AutoTokenizer.from_pretrained(str(path)), AutoModel.from_pretrained(str(path)).eval()
    for text in ["the capital of france is paris", "a quiet street near the old museum in rome"]:
        with torch.no_grad():
            hidden = model(**tok(text, return_tensors="pt")).last_hidden_state[0]
        numpy.testing.assert_allclose(nlp(text).vector, hidden.mean(0).numpy(), atol=1e-5)


TRAINED = ("trf_ner", "trf_tagger_ner", "trf_textcat")


def textcat_loss(nlp, examples) -> float:
    docs = list(nlp.get_pipe("transformer").pipe(eg.predicted.copy() for eg in examples))
    textcat = nlp.get_pipe("trf_textcat")
    return float(textcat.get_loss(examples, textcat.predict(docs))[0])


@pytest.fixture(scope="session")
def trained_pipelines(arch_root, arch_checkpoints):
    """arch -> (the five pipes on one transformer after a few updates, losses per step, its directory)."""
    cache = {}

    def get(arch):
        if arch not in cache:
            spacy.util.fix_random_seed(0)
            nlp = spacy.blank("en")
            nlp.add_pipe("transformer", config={"model": {"name": str(arch_checkpoints[arch])}})
            for pipe in ("fill_mask",) + TRAINED + ("trf_similarity",):
                nlp.add_pipe(pipe)
            ner, cats = ner_examples(nlp), cat_examples(nlp)
            optimizer = nlp.initialize(lambda: ner + cats)
            losses = {pipe: [] for pipe in TRAINED}
            # textcat first, its loss measured without dropout before and after (its first small steps
            # are lost in the noise once NER's large gradients have moved the shared transformer), then NER.
            losses["trf_textcat"].append(textcat_loss(nlp, cats))
            for _ in range(4):
                nlp.update(cats, sgd=optimizer, drop=0.0, exclude=["trf_ner", "trf_tagger_ner"])
            losses["trf_textcat"].append(textcat_loss(nlp, cats))
            for _ in range(4):
                step = {}
                nlp.update(ner, sgd=optimizer, losses=step, drop=0.0, exclude=["trf_textcat"])
                for pipe in ("trf_ner", "trf_tagger_ner"):
                    losses[pipe].append(step[pipe])
            nlp.meta["name"] = "mlm_arch_" + arch.replace("-", "_")
            (arch_root / "pipelines").mkdir(exist_ok=True)
            nlp.to_disk(arch_root / "pipelines" / arch)
            cache[arch] = (nlp, losses, arch_root / "pipelines" / arch)
        return cache[arch]

    return get


def outputs(nlp, mask_token):
    """What each pipe predicts on a probe text, in a form that compares across processes."""
    doc = nlp(PROBES[0].format(m=mask_token))
    return {"pipes": nlp.pipe_names, "fill_mask": [p["token"] for p in doc._.fill_mask[0]],
            "ents": [(e.start_char, e.end_char, e.label_) for e in doc.ents],
            "cats": {k: round(v, 4) for k, v in sorted(doc.cats.items())},
            "vector": [round(float(x), 4) for x in doc.vector[:8]]}


@pytest.mark.parametrize("arch", ARCHS)
def test_pipes_train_and_round_trip(arch, trained_pipelines):
    nlp, losses, path = trained_pipelines(arch)
    # The loss goes down: below the first step's after training (textcat: without dropout, after
    # 4 steps; NER: the update losses of 4 steps, which a tiny random encoder makes bumpy).
    for pipe in TRAINED:
        assert min(losses[pipe][1:]) < losses[pipe][0], (pipe, losses[pipe])
    mask = nlp.get_pipe("fill_mask").mask_token
    loaded = spacy.load(path)
    assert outputs(loaded, mask) == outputs(nlp, mask)


@pytest.fixture(scope="session")
def wheel_outputs(trained_pipelines, wheel_venv, arch_root):
    """arch -> the outputs of its pipeline packaged with `spacy package`, installed (all in one pip call)
    and loaded (all in one process) in the fresh venv."""
    from spacy.cli.package import package

    wheels, names = [], {}
    for arch in ARCHS:
        nlp, _, path = trained_pipelines(arch)
        out = arch_root / "packages" / arch
        out.mkdir(parents=True)
        package(path, out, create_sdist=False, create_wheel=True, force=True, silent=True)
        (wheel,) = out.glob("*/dist/*.whl")
        wheels.append(str(wheel))
        names[arch] = (f"{nlp.lang}_{nlp.meta['name']}", nlp.get_pipe("fill_mask").mask_token)
    run([wheel_venv.python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", *wheels])
    # The probe is this module's `outputs`, run by the venv's python (tests/ is not on its path).
    script = "import json, spacy\n%s\nPROBES = %r\nnames = json.loads(%r)\n" % (
        inspect.getsource(outputs), PROBES, json.dumps(names))
    script += "print(json.dumps({arch: outputs(spacy.load(name), mask) for arch, (name, mask) in names.items()}))\n"
    return json.loads(run([wheel_venv.python, "-c", script], cwd=str(arch_root)).strip().splitlines()[-1])


@pytest.mark.parametrize("arch", ARCHS)
def test_pipeline_wheel_loads_in_fresh_venv(arch, wheel_outputs, trained_pipelines):
    nlp, _, _ = trained_pipelines(arch)
    expected = json.loads(json.dumps(outputs(nlp, nlp.get_pipe("fill_mask").mask_token)))
    assert wheel_outputs[arch] == expected
    assert expected["pipes"] == ["transformer", "fill_mask", *TRAINED, "trf_similarity"]


def test_cli_names_every_arch():
    """`init-model --arch` offers exactly init_model's architectures (spelled out in the CLI)."""
    (option,) = [p for p in cli.commands["init-model"].params if p.name == "arch"]
    assert tuple(option.type.choices) == ARCHS
