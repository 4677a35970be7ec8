from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version: dict = {}
exec((HERE / "spacy_mlm" / "about.py").read_text(), version)

setup(
    name="spacy-mlm",
    version=version["__version__"],
    description="Masked-language-model encoders as first-class spaCy citizens: "
    "fill-mask, NER, textcat and similarity pipes on one shared transformer, "
    "plus MLM pretraining.",
    long_description=(HERE / "README.md").read_text(encoding="utf8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["spacy_mlm", "spacy_mlm.*"]),
    include_package_data=True,
    package_data={"spacy_mlm": ["py.typed", "configs/*.cfg"]},
    install_requires=[
        "spacy>=3.8,<3.9",
        # spacy-transformers 1.4 pins transformers<4.53.3: never pull transformers 5.
        "spacy-transformers>=1.3,<1.5",
        "transformers>=4.41,<4.53.3",
        # torch.load defaults to weights_only=True from 2.6: spacy-transformers reads a pipeline's encoder
        # weights with torch.load and no weights_only, so an older torch would run any pickle in them.
        "torch>=2.6",
        "thinc>=8.3,<8.4",
        "click>=8.0",
        "tokenizers>=0.19",
        "safetensors>=0.4",
        "tqdm>=4.60",
        "srsly>=2.4",
        # `spacy package --build wheel` (the project's package step) needs it.
        "build>=1.0",
    ],
    extras_require={
        # jieba: spaCy's Chinese word segmenter, for the language tests (tests/test_languages.py).
        "test": ["pytest>=7", "pytest-xdist>=3.8", "hypothesis>=6", "ruff", "scipy", "jieba>=0.42"],
        "bench": ["accelerate>=0.26", "scipy"],
        "gpu": ["cupy-cuda12x>=12"],
    },
    entry_points={
        "spacy_factories": [
            "fill_mask = spacy_mlm.pipes.fill_mask:make_fill_mask",
            "trf_similarity = spacy_mlm.pipes.similarity:make_trf_similarity",
            "trf_ner = spacy_mlm.pipes.ner:make_trf_ner",
            "trf_beam_ner = spacy_mlm.pipes.ner:make_trf_beam_ner",
            "trf_tagger_ner = spacy_mlm.pipes.tagger_ner:make_trf_tagger_ner",
            "trf_textcat = spacy_mlm.pipes.textcat:make_trf_textcat",
            "trf_textcat_multilabel = spacy_mlm.pipes.textcat:make_trf_textcat_multilabel",
        ],
        "spacy_cli": ["mlm = spacy_mlm.spacy_cli"],
        # spaCy's registry.layers is thinc's: entry point group "thinc_layers".
        "thinc_layers": ["spacy_mlm.reduce_first.v1 = spacy_mlm.layers:reduce_first"],
        "spacy_architectures": [
            "spacy_mlm.TokenClassifier.v1 = spacy_mlm.pipes.tagger_ner:build_token_classifier",
            "spacy_mlm.PrecisionTransformerModel.v1 = spacy_mlm.precision:create_precision_transformer_model",
            "spacy_mlm.TransformerModel.v1 = spacy_mlm.spans:create_transformer_model",
        ],
        # trf_similarity's training functions, found by name from a config (configs/similarity.cfg).
        "spacy_span_getters": [
            "spacy_mlm.pair_spans.v1 = spacy_mlm.pipes.similarity:create_pair_spans",
            "spacy_mlm.model_max_spans.v1 = spacy_mlm.spans:create_model_max_spans",
        ],
        "spacy_readers": [
            "spacy_mlm.PairCorpus.v1 = spacy_mlm.readers.pairs:create_pair_corpus",
            "spacy_mlm.MultiTaskCorpus.v1 = spacy_mlm.readers.pairs:create_multitask_corpus",
        ],
        "spacy_scorers": ["spacy_mlm.similarity_scorer.v1 = spacy_mlm.pipes.similarity:make_similarity_scorer"],
        "spacy_misc": [
            "spacy_mlm.CoSENTLoss.v1 = spacy_mlm.pipes._similarity_losses:create_cosent_loss",
            "spacy_mlm.MNRLoss.v1 = spacy_mlm.pipes._similarity_losses:create_mnr_loss",
            # The MLM data functions of pretraining configs and fill_mask's `masking` block.
            "spacy_mlm.PlainTextCorpus.v1 = spacy_mlm.mlm_data.corpus:plain_text_corpus",
            "spacy_mlm.JsonlCorpus.v1 = spacy_mlm.mlm_data.corpus:jsonl_corpus",
            "spacy_mlm.DocBinCorpus.v1 = spacy_mlm.mlm_data.corpus:docbin_corpus",
            "spacy_mlm.Corpus.v1 = spacy_mlm.mlm_data.corpus:any_corpus",
            "spacy_mlm.TokenMasking.v1 = spacy_mlm.mlm_data.masking:token_masking",
            "spacy_mlm.WholeWordMasking.v1 = spacy_mlm.mlm_data.masking:whole_word_masking",
            "spacy_mlm.SpanMasking.v1 = spacy_mlm.mlm_data.masking:span_masking",
        ],
        "console_scripts": ["spacy-mlm = spacy_mlm.cli:main"],
    },
    classifiers=[
        "Framework :: spaCy",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
