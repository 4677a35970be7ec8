"""Languages: German, Chinese (no spaces; spaCy's jieba segmenter) and Arabic
(right to left), each through a tiny XLM-R with a SentencePiece-style unigram tokenizer (`▁` word
starts) trained on a few sentences of the language: spacy-transformers' alignment loses no
wordpiece, fill_mask equals HF's pipeline, NER entities land on the right characters."""

import math
from collections import Counter

import pytest
import spacy
from spacy.training import Example

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
# (spaCy language, its tokenizer settings, sentences, entity strings, a fill_mask text)
LANGUAGES = {
    "de": (
        {},
        [
            "Ich wohne seit zwei Jahren in Berlin.",
            "München ist eine schöne Stadt im Süden.",
            "Wir fahren morgen nach Hamburg, um Freunde zu besuchen.",
            "Die Straßen in Köln sind heute sehr voll.",
            "Berlin und München haben viele Museen.",
            "Das Wetter in Hamburg ist oft grau und kühl.",
            "Er arbeitet in einem großen Büro in Köln.",
            "Im Sommer gehen die Kinder gern in den Park.",
        ],
        ["Berlin", "München", "Hamburg", "Köln"],
        "Ich wohne in <mask>.",
    ),
    "zh": (
        {"nlp": {"tokenizer": {"segmenter": "jieba"}}},
        [
            "我住在北京。",
            "上海是一个很大的城市。",
            "我们明天去广州看朋友。",
            "北京和上海都有很多博物馆。",
            "深圳的天气很热。",
            "他在广州的一家公司工作。",
            "夏天孩子们喜欢去公园玩。",
            "这条街上有很多老房子。",
        ],
        ["北京", "上海", "广州", "深圳"],
        "我住在<mask>。",
    ),
    "ar": (
        {},
        [
            "أعيش في القاهرة منذ سنتين.",
            "دبي مدينة كبيرة وجميلة.",
            "سنسافر غدا إلى بيروت لزيارة الأصدقاء.",
            "في القاهرة متاحف كثيرة.",
            "الطقس في عمان بارد في الشتاء.",
            "يعمل في مكتب كبير في بيروت.",
            "يحب الأطفال اللعب في الحديقة.",
            "الشوارع مزدحمة اليوم.",
        ],
        ["القاهرة", "دبي", "بيروت", "عمان"],
        "أعيش في <mask> منذ سنتين.",
    ),
}
# Whitespace runs, digits, Latin inside other scripts, characters the tokenizer never saw (<unk>).
ODD = {"de": "Berlin  2024\nÄrger ✓ zürich", "zh": "我住在 Berlin 2024年  北京✓", "ar": "أعيش في Berlin  2024 ✓ دبي"}


def unigram_vocab(sentences, max_len: int = 6):
    """(piece, log probability) for every substring of up to `max_len` characters of the `▁`-prefixed
    words that occurs twice or more, and every character with and without `▁`, ids by frequency.
    Counted here rather than by tokenizers' UnigramTrainer, whose result changes from process to
    process (hash-map order), which made tests flaky."""
    counts = Counter()
    for sentence in sentences:
        for word in sentence.split():
            word = "▁" + word
            for i in range(len(word)):
                for j in range(i + 1, min(len(word), i + max_len) + 1):
                    counts[word[i:j]] += 1
    chars = {c for sentence in sentences for c in sentence if not c.isspace()}
    pieces = {p for p, n in counts.items() if n >= 2} | chars | {"▁" + c for c in chars} | {"▁"}
    total = sum(counts[p] + 1 for p in pieces)
    ranked = sorted(pieces, key=lambda p: (-counts[p], p))
    return [(p, 0.0) for p in SPECIALS] + [(p, math.log((counts[p] + 1) / total)) for p in ranked]


def unigram_xlmr(path, sentences):
    """A tiny XLM-R whose tokenizer is a unigram model over `sentences` (Metaspace `▁`)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForMaskedLM

    tok = Tokenizer(models.Unigram(unigram_vocab(sentences), unk_id=SPECIALS.index("<unk>")))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens(SPECIALS)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    # PreTrainedTokenizerFast, not XLMRobertaTokenizerFast: the latter built from a tokenizers object has
    # vocab_file None (no sentencepiece.bpe.model), on which spacy-transformers' loading fails.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=512, bos_token="<s>", eos_token="</s>", cls_token="<s>",
        sep_token="</s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        model_input_names=["input_ids", "attention_mask"],
    )
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=514, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
        initializer_range=0.2,
    )
    XLMRobertaForMaskedLM(config).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def xlmr(tmp_path_factory):
    """language -> tiny XLM-R checkpoint trained on that language's sentences."""
    root = tmp_path_factory.mktemp("xlmr")
    return {lang: unigram_xlmr(root / lang, spec[1]) for lang, spec in LANGUAGES.items()}


def blank(lang):
    if lang == "zh":
        pytest.importorskip("jieba", reason="pip install jieba (in the test extra)")
    return spacy.blank(lang, config=LANGUAGES[lang][0])


def pipeline(lang, checkpoint, *pipes):
    nlp = blank(lang)
    nlp.add_pipe("transformer", config={"model": {"name": str(checkpoint)}})
    for pipe in pipes:
        nlp.add_pipe(pipe)
    return nlp


@pytest.fixture(scope="module")
def fill_mask_nlps(xlmr):
    nlps = {}
    for lang in LANGUAGES:
        nlps[lang] = pipeline(lang, xlmr[lang], "fill_mask")
        nlps[lang].initialize()
    return nlps


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_no_token_loses_its_wordpieces(lang, fill_mask_nlps):
    """Every non-space spaCy token gets at least one wordpiece, and the pieces aligned to tokens
    are exactly the non-special pieces of the tokenization (none dropped, none invented)."""
    nlp = fill_mask_nlps[lang]
    tokenizer = nlp.get_pipe("transformer").model.tokenizer
    # The specials the tokenizer adds around a text; <unk> and <mask> pieces stand for text.
    added_ids = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id, tokenizer.mask_token_id}
    n_tokens = n_pieces = 0
    for text in [*LANGUAGES[lang][1], ODD[lang]]:
        doc = nlp(text)
        trf = doc._.trf_data
        ids = trf.wordpieces.input_ids.ravel()
        mask = trf.wordpieces.attention_mask.ravel().astype(bool)
        content = {i for i in range(ids.size) if mask[i] and int(ids[i]) not in added_ids}
        lengths = trf.align.lengths
        missing = [t.text for t in doc if not t.is_space and lengths[t.i] == 0]
        assert not missing, f"{lang}: tokens without wordpieces {missing} in {text!r}"
        assert set(trf.align.dataXd.ravel().tolist()) == content, text
        n_tokens += sum(not t.is_space for t in doc)
        n_pieces += len(content)
    assert n_tokens > 40 and n_pieces >= n_tokens


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_fill_mask_equals_hf(lang, xlmr, fill_mask_nlps):
    from transformers import pipeline as hf_pipeline

    text = LANGUAGES[lang][3]
    hf = hf_pipeline("fill-mask", model=str(xlmr[lang]), device="cpu")
    doc = fill_mask_nlps[lang](text)
    ref = hf(text)
    assert len(doc._.fill_mask) == 1  # also where the spaCy tokenizer splits '<mask>' (zh: '<', 'mask', '>')
    ours = doc._.fill_mask[0]
    assert [p["token"] for p in ours] == [p["token"] for p in ref]
    for o, r in zip(ours, ref):
        assert o["score"] == pytest.approx(r["score"], abs=1e-5)
    top = ours[0]
    assert top["sequence"] == text.replace("<mask>", top["token_str"].strip())


def entity_examples(nlp, lang):
    sentences, cities = LANGUAGES[lang][1], LANGUAGES[lang][2]
    examples = []
    for text in sentences:
        ents = []
        for city in cities:
            at = text.find(city)
            if at != -1:
                ents.append((at, at + len(city), "LOC"))
        doc = nlp.make_doc(text)
        assert all(doc.char_span(s, e) is not None for s, e, _ in ents), (lang, text, [t.text for t in doc])
        examples.append(Example.from_dict(doc, {"entities": sorted(ents)}))
    return examples


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_entities_align_to_spacy_tokens(lang):
    """Every city of the NER data is whole spaCy tokens (no misaligned '-' tags)."""
    nlp = blank(lang)
    for eg in entity_examples(nlp, lang):
        tags = eg.get_aligned_ner()
        assert "-" not in tags and sum(tag[0] in "BU" for tag in tags) == len(eg.reference.ents)


def test_ner_entities_map_to_their_characters_zh(xlmr):
    """trf_ner trained on text without spaces predicts its entities on the right characters.
    (zh only, to keep the suite short: German and Arabic entities are whole spaCy tokens above,
    and each token's wordpieces are intact.)"""
    from thinc.api import Adam

    spacy.util.fix_random_seed(0)
    nlp = pipeline("zh", xlmr["zh"], "trf_ner")
    examples = entity_examples(nlp, "zh")
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.005)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    cities = LANGUAGES["zh"][2]
    for eg in examples:
        text = eg.reference.text
        doc = nlp(text)
        assert [(e.start_char, e.end_char) for e in doc.ents] == [(e.start_char, e.end_char) for e in eg.reference.ents]
        assert all(text[e.start_char:e.end_char] == e.text and e.text in cities for e in doc.ents)
