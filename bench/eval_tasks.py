"""Shared helpers of the task suites: WNUT-17 NER and SST-2 sentiment fine-tuned by spacy-mlm's pipes
(spaCy's own loop, configs/ner.cfg / configs/textcat.cfg) or by HF `Trainer` on the same checkpoint.

Both systems fine-tune the same checkpoint with the same epochs, peak learning rate, batch size
(sentences), linear warmup/decay schedule, weight decay and gradient clipping; both are scored by the
same code (spaCy's exact-span NER P/R/F, which is what seqeval computes on IOB2, and accuracy for
sentiment) with the gold tokenization. Words/s = training words x epochs / wall time of the training
loop (model loading, label setup and evaluation excluded on both sides). `python -m bench tasks`
runs them; bench/dapt_tweets.py imports them as a top-level module (`from eval_tasks import ...`).
"""

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
NER_FILES = ("ner/wnut17/wnut17train.conll", "ner/wnut17/emerging.dev.conll")
TEXTCAT_FILES = ("textcat/sst2-sentences/stsa.binary.train", "textcat/sst2-sentences/stsa.binary.dev")


def load_docs(path: Path, kind: str, limit: int = 0) -> List[Any]:
    """Reference docs via the package's converter (one sentence per doc for NER)."""
    import spacy

    from spacy_mlm.convert import read_conll_ner, read_textcat

    nlp = spacy.blank("en")
    docs = list(read_conll_ner(path, n_sents=1, vocab=nlp.vocab) if kind == "ner" else read_textcat(path, nlp=nlp))
    return docs[:limit] if limit else docs


def gold_tokens_doc(vocab: Any, ref: Any) -> Any:
    from spacy.tokens import Doc

    return Doc(vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref])


def ner_scores(preds: Sequence[Any], refs: Sequence[Any]) -> Dict[str, float]:
    """Exact span match P/R/F over entity (start, end, label): seqeval's definition."""
    from spacy.scorer import get_ner_prf
    from spacy.training import Example

    scores = get_ner_prf([Example(p, r) for p, r in zip(preds, refs)])
    return {"ents_p": scores["ents_p"], "ents_r": scores["ents_r"], "ents_f": scores["ents_f"]}


def accuracy(pred_cats: Sequence[Dict[str, float]], refs: Sequence[Any]) -> Dict[str, float]:
    hits = sum(max(p, key=p.get) == max(r.cats, key=r.cats.get) for p, r in zip(pred_cats, refs))
    return {"accuracy": hits / len(refs)}


def score_and_save(task: str, preds: Sequence[Any], dev: Sequence[Any], path: Optional[Path]) -> Dict[str, float]:
    """Score dev predictions (docs for NER, cats dicts for textcat) the same way for both systems;
    with a path, also write them, one JSON line per dev doc, for paired comparisons later."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf8") as out:
            for pred in preds:
                row = {"ents": [[e.start, e.end, e.label_] for e in pred.ents]} if task == "ner" else {"cats": pred}
                out.write(json.dumps(row) + "\n")
    return ner_scores(preds, dev) if task == "ner" else accuracy(preds, dev)


def n_words(docs: Sequence[Any]) -> int:
    return sum(len(d) for d in docs)


def schedule(n_train: int, batch_size: int, epochs: int, warmup_ratio: float) -> Tuple[int, int]:
    total = math.ceil(n_train / batch_size) * epochs
    return total, int(total * warmup_ratio)


def run_spacy(task: str, train: List[Any], dev: List[Any], args: argparse.Namespace) -> Dict[str, Any]:
    from spacy import util
    from spacy.tokens import DocBin
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train as train_loop

    total, warmup = schedule(len(train), args.batch_size, args.epochs, args.warmup_ratio)
    with tempfile.TemporaryDirectory() as tmp:
        DocBin(docs=train).to_disk(f"{tmp}/train.spacy")
        # spaCy evaluates once after the first step; a few dev docs keep that cheap.
        DocBin(docs=dev[:16]).to_disk(f"{tmp}/dev.spacy")
        config = util.load_config(REPO / "configs" / f"{task}.cfg", interpolate=False)
        config["paths"].update(train=f"{tmp}/train.spacy", dev=f"{tmp}/dev.spacy", base_model=str(args.base_model))
        config["system"]["seed"] = args.seed
        for split in ("train", "dev"):
            config["corpora"][split]["gold_preproc"] = task == "ner"  # the gold tokens, as HF gets them
        if args.mlm_rate is not None:
            add_fill_mask(config, args.mlm_rate)
        training = config["training"]
        training.update(max_epochs=args.epochs, max_steps=0, eval_frequency=total + 1, patience=0, dropout=0.1)
        training["batcher"] = {"@batchers": "spacy.batch_by_sequence.v1", "size": args.batch_size, "get_length": None}
        training["logger"] = {"@loggers": "spacy.ConsoleLogger.v1", "progress_bar": True}
        training["optimizer"]["learn_rate"].update(initial_rate=args.lr, warmup_steps=warmup, total_steps=total)
        for override in args.set or []:
            key, value = override.split("=", 1)
            *sections, name = key.split(".")
            node = config
            for section in sections:
                node = node.setdefault(section, {})
            node[name] = json.loads(value)
        nlp = init_nlp(config, use_gpu=args.gpu_id)
        start = time.perf_counter()
        train_loop(nlp, None, stdout=sys.stderr, stderr=sys.stderr)
        seconds = time.perf_counter() - start
    if args.save_dir:
        nlp.to_disk(Path(args.save_dir) / f"{task}-{args.tag}")
    preds = list(nlp.pipe(gold_tokens_doc(nlp.vocab, r) for r in dev))
    scores = score_and_save(task, preds if task == "ner" else [p.cats for p in preds], dev, getattr(args, "predictions", None))
    return {"seconds": seconds, "words_per_s": n_words(train) * args.epochs / seconds, "steps": total, **scores}


def add_fill_mask(config: Any, mlm_rate: float) -> None:
    """Put fill_mask after the transformer; mlm_rate > 0 trains its head with the encoder."""
    config["nlp"]["pipeline"] = ["transformer", "fill_mask", *config["nlp"]["pipeline"][1:]]
    config["components"]["fill_mask"] = {"factory": "fill_mask", "mlm_rate": mlm_rate}


def run_hf(task: str, train: List[Any], dev: List[Any], args: argparse.Namespace) -> Dict[str, Any]:
    import spacy
    from transformers import AutoTokenizer, Trainer, TrainingArguments, set_seed

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(args.base_model))
    build = hf_ner_data if task == "ner" else hf_textcat_data
    model, train_set, collator, predict = build(tokenizer, train, args)
    total, warmup = schedule(len(train), args.batch_size, args.epochs, args.warmup_ratio)
    with tempfile.TemporaryDirectory() as tmp:
        training_args = TrainingArguments(
            output_dir=tmp, num_train_epochs=args.epochs, learning_rate=args.lr,
            per_device_train_batch_size=args.batch_size, warmup_steps=warmup, lr_scheduler_type="linear",
            weight_decay=0.01, max_grad_norm=1.0, seed=args.seed, save_strategy="no", logging_strategy="no",
            report_to=[], use_cpu=args.gpu_id < 0, disable_tqdm=False, dataloader_num_workers=0,
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=train_set, data_collator=collator)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    model.eval()
    vocab = spacy.blank("en").vocab
    scores = score_and_save(task, predict(model, tokenizer, dev, vocab), dev, getattr(args, "predictions", None))
    return {"seconds": seconds, "words_per_s": n_words(train) * args.epochs / seconds, "steps": total, **scores}


def hf_ner_data(tokenizer: Any, train: List[Any], args: argparse.Namespace):
    import torch
    from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

    from spacy_mlm.convert import iob_to_iob2

    def tags(doc: Any) -> List[str]:
        return ["O" if t.ent_iob_ in ("O", "") else f"{t.ent_iob_}-{t.ent_type_}" for t in doc]

    labels = sorted({t for d in train for t in tags(d)})
    label_ids = {label: i for i, label in enumerate(labels)}

    def encode(doc: Any) -> Dict[str, Any]:
        enc = tokenizer([t.text for t in doc], is_split_into_words=True, truncation=True, max_length=args.max_length)
        row = dict(enc)
        # The usual recipe: label each word's first wordpiece, ignore the rest (-100).
        doc_tags, prev, row["labels"] = tags(doc), None, []
        for word_id in enc.word_ids():
            first = word_id is not None and word_id != prev
            row["labels"].append(label_ids[doc_tags[word_id]] if first else -100)
            prev = word_id
        return row

    model = AutoModelForTokenClassification.from_pretrained(
        str(args.base_model), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids
    )

    @torch.no_grad()
    def predict(model: Any, tokenizer: Any, dev: List[Any], vocab: Any) -> List[Any]:
        from spacy.tokens import Doc

        preds = []
        for i in range(0, len(dev), 64):
            batch = dev[i : i + 64]
            inputs = tokenizer([[t.text for t in d] for d in batch], is_split_into_words=True, truncation=True,
                               max_length=args.max_length, padding=True, return_tensors="pt")
            logits = model(**inputs).logits
            for j, doc in enumerate(batch):
                word_tags, prev = ["O"] * len(doc), None
                for pos, word_id in enumerate(inputs.word_ids(j)):
                    if word_id is not None and word_id != prev:
                        word_tags[word_id] = labels[int(logits[j, pos].argmax())]
                    prev = word_id
                words = [t.text for t in doc]
                preds.append(Doc(vocab, words=words, spaces=[bool(t.whitespace_) for t in doc], ents=iob_to_iob2(word_tags)))
        return preds

    return model, [encode(d) for d in train], DataCollatorForTokenClassification(tokenizer), predict


def hf_textcat_data(tokenizer: Any, train: List[Any], args: argparse.Namespace):
    import torch
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    labels = sorted(train[0].cats)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(args.base_model), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    rows = []
    for doc in train:
        row = dict(tokenizer(doc.text, truncation=True, max_length=args.max_length))
        row["labels"] = labels.index(max(doc.cats, key=doc.cats.get))
        rows.append(row)

    @torch.no_grad()
    def predict(model: Any, tokenizer: Any, dev: List[Any], vocab: Any) -> List[Dict[str, float]]:
        cats = []
        for i in range(0, len(dev), 64):
            inputs = tokenizer([d.text for d in dev[i : i + 64]], truncation=True, max_length=args.max_length,
                               padding=True, return_tensors="pt")
            for probs in model(**inputs).logits.softmax(-1).tolist():
                cats.append(dict(zip(labels, probs)))
        return cats

    return model, rows, DataCollatorWithPadding(tokenizer), predict
