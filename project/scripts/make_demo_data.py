"""Write the demo data in assets/ (run once; its output is committed).

A small made-up travel domain: raw text for MLM pretraining, NER sentences (PERSON, ORG, LOC)
in CoNLL format and sentiment reviews (POS/NEG). Every sentence is generated from the lists
below with a fixed seed, so anyone can regenerate the exact files:

    python scripts/make_demo_data.py assets

The dev sets measure generalisation, not recall of the training lists: dev sentences use
entity names, templates and sentiment words that never occur in training (or in the raw
pretraining text), and a third of the NER dev sentences are all lowercase, so a dev score is
what a user can expect on new text of this domain.
The raw text states a few country facts, but never the ones the report asks the model about
(France/Paris, Japan/Tokyo, ...): those must come from the pretrained encoder.
"""

import random
import sys
from pathlib import Path

# Names are split into a training half and a held-out (dev) half.
PEOPLE = {
    "train": ["Alice Martin", "Marco Rossi", "Priya Shah", "Tom Baker", "Elena Petrova", "Kenji Sato",
              "Fatima Zahra", "Lucas Silva", "Nora Lind", "Omar Haddad", "Grace Kim", "Jonas Weber"],
    "dev": ["Sofia Costa", "David Cohen", "Amara Okafor", "Liam Byrne", "Mei Chen", "Carlos Ruiz",
            "Hannah Schmidt", "Ravi Patel"],
}
ORGS = {
    "train": ["Northwind Air", "Blue Rail", "Harbor Hotels", "Summit Tours", "City Cabs", "Atlas Travel",
              "Sunrise Ferries", "Metro Bikes"],
    "dev": ["Alpine Lodges", "Coastal Bus", "Orbit Airlines", "Green Hostels", "Silver Coaches", "Polar Cruises"],
}
PLACES = {
    "train": ["Lisbon", "Oslo", "Berlin", "Madrid", "Vienna", "Prague", "Dublin", "Athens", "Lima", "Nairobi",
              "Toronto", "Sydney", "Seoul", "Quebec", "Porto", "Kyoto", "Paris", "Rome", "Tokyo", "Cairo"],
    "dev": ["Helsinki", "Budapest", "Warsaw", "Chicago", "Istanbul", "Manila", "Santiago", "Edinburgh"],
}
THINGS = ["hotel", "train", "flight", "tour", "ferry", "room", "museum", "guide", "breakfast", "bus"]
# Sentiment words, split likewise: the dev reviews use adjectives no training review has.
GOOD = {"train": ["wonderful", "excellent", "friendly", "clean", "comfortable", "delightful", "punctual"],
        "dev": ["superb", "charming", "relaxing", "lovely", "pleasant", "fantastic"]}
BAD = {"train": ["terrible", "dirty", "rude", "noisy", "awful", "uncomfortable", "late"],
       "dev": ["disappointing", "crowded", "overpriced", "filthy", "horrible", "unpleasant"]}

# NER templates: {P} person, {O} organisation, {L} place, {T} thing.
NER_TEMPLATES = {
    "train": [
        "{P} flew from {L} to {L} with {O} last week .",
        "{O} opened a new office in {L} this spring .",
        "Last summer {P} worked as a guide for {O} in {L} .",
        "{P} and {P} took the night train from {L} to {L} .",
        "The {T} in {L} was booked through {O} by {P} .",
        "{O} will add daily routes between {L} and {L} .",
        "In {L} , {P} met the manager of {O} .",
        "We stayed two nights in {L} before leaving for {L} .",
        "The old {T} near the station in {L} was quiet .",
        "{P} says the {T} was on time .",
    ],
    "dev": [
        "{P} wrote a long review of {O} after a trip to {L} .",
        "According to {P} , {O} is the best way to see {L} .",
        "Next month {O} starts flights from {L} to {L} .",
        "{P} lost a bag on the way to {L} .",
    ],
}
# Sentiment templates: {A} adjective of the review's polarity.
REVIEW_TEMPLATES = {
    "train": [
        "The {T} in {L} was {A} .",
        "Our {T} with {O} was {A} and {A} .",
        "Honestly the {T} was {A} , the staff were {A} .",
        "{O} gave us a {A} {T} .",
        "The {T} was {A} from start to finish .",
        "I found the {T} {A} and the {T} {A} .",
    ],
    "dev": [
        "What a {A} {T} , everything felt {A} .",
        "Everyone said the {T} in {L} was {A} .",
        "My {T} was {A} .",
    ],
}
RAW_ONLY_TEMPLATES = [
    "Trains from {L} to {L} leave every hour from the main station .",
    "Many visitors to {L} book a {T} before they arrive .",
    "The {T} costs less in winter than in summer .",
    "{O} sells tickets online and at the airport in {L} .",
]
# Country facts for the raw text. The report's probes (France, Japan, Italy, Egypt) are left out.
FACTS = [
    "The capital of {c} is {k} .", "{k} is the capital of {c} .", "{k} is the largest city of {c} .",
    "Most visitors to {c} arrive at the airport of {k} .",
]
COUNTRIES = [("Portugal", "Lisbon"), ("Norway", "Oslo"), ("Germany", "Berlin"), ("Spain", "Madrid"),
             ("Austria", "Vienna"), ("Ireland", "Dublin"), ("Greece", "Athens"), ("Peru", "Lima"),
             ("Kenya", "Nairobi"), ("Czechia", "Prague"), ("Sweden", "Stockholm"), ("Denmark", "Copenhagen"),
             ("Russia", "Moscow"), ("China", "Beijing"), ("India", "Delhi"), ("Mexico", "Mexico City"),
             ("Canada", "Ottawa"), ("England", "London"), ("Belgium", "Brussels"), ("Poland", "Warsaw")]
# Sentences the report shows the pipeline on; none of them occurs in any asset.
PROBES_FACTS = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Egypt", "Cairo")]


def fill(template: str, rng: random.Random, split: str, adjectives=None):
    """The sentence's tokens and their IOB2 tags, with names from `split`'s lists."""
    tokens, tags = [], []
    for piece in template.split():
        if piece in ("{P}", "{O}", "{L}"):
            label = {"{P}": "PERSON", "{O}": "ORG", "{L}": "LOC"}[piece]
            words = rng.choice({"PERSON": PEOPLE, "ORG": ORGS, "LOC": PLACES}[label][split]).split()
            tokens += words
            tags += [f"B-{label}"] + [f"I-{label}"] * (len(words) - 1)
        elif piece in ("{T}", "{A}"):
            pool = THINGS if piece == "{T}" else adjectives or GOOD[split] + BAD[split]
            tokens.append(rng.choice(pool))
            tags.append("O")
        else:
            tokens.append(piece)
            tags.append("O")
    return tokens, tags


def write_conll(path: Path, sentences) -> None:
    with path.open("w", encoding="utf8") as f:
        for tokens, tags in sentences:
            f.writelines(f"{tok}\t{tag}\n" for tok, tag in zip(tokens, tags))
            f.write("\n")


def reviews(rng: random.Random, split: str, n: int):
    for i in range(n):
        label = "POS" if i % 2 == 0 else "NEG"
        adjectives = (GOOD if label == "POS" else BAD)[split]
        tokens, _ = fill(rng.choice(REVIEW_TEMPLATES[split]), rng, split, adjectives)
        yield f"{label}\t{' '.join(tokens)}\n"


def raw_sentences(rng: random.Random, n: int):
    """Unlabeled domain text from the training lists only, plus country facts."""
    templates = NER_TEMPLATES["train"] + REVIEW_TEMPLATES["train"] + RAW_ONLY_TEMPLATES
    for i in range(n):
        if i % 5 == 4:
            country, city = rng.choice(COUNTRIES)
            yield rng.choice(FACTS).format(c=country, k=city)
        else:
            yield " ".join(fill(rng.choice(templates), rng, "train")[0])


def main(out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(13)
    # NER sentences come from every template, reviews included: a model that never saw a
    # review sentence without entities tags half of each review as one.
    # Some sentences are all lowercase, as in user-written text: capitalisation alone must not
    # decide what is an entity (a third of the dev set, a tenth of training).
    for split, n, lower in (("train", 400, 0.1), ("dev", 100, 0.33)):
        templates = NER_TEMPLATES[split] + REVIEW_TEMPLATES[split]
        sentences = [fill(rng.choice(templates), rng, split) for _ in range(n)]
        sentences = [([t.lower() for t in toks], tags) if rng.random() < lower else (toks, tags) for toks, tags in sentences]
        write_conll(out_dir / f"ner_{split}.conll", sentences)
    for split, n in (("train", 320), ("dev", 80)):
        (out_dir / f"reviews_{split}.tsv").write_text("".join(reviews(rng, split, n)), encoding="utf8")
    (out_dir / "raw.txt").write_text("".join(s + "\n" for s in raw_sentences(rng, 6000)), encoding="utf8")
    (out_dir / "raw_dev.txt").write_text("".join(s + "\n" for s in raw_sentences(rng, 300)), encoding="utf8")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "assets")
