"""Write the demo data in assets/ (run once; its output is committed).

A small made-up travel domain: raw text for tokenizer training and MLM pretraining, NER
sentences (PERSON, ORG, LOC) in CoNLL format, and sentiment reviews (POS/NEG). Every
sentence is generated from the templates below with a fixed seed, so anyone can
regenerate the exact files: python scripts/make_demo_data.py assets
"""

import random
import sys
from pathlib import Path

PEOPLE = ["Alice Martin", "Marco Rossi", "Priya Shah", "Tom Baker", "Elena Petrova", "Kenji Sato",
          "Fatima Zahra", "Lucas Silva", "Nora Lind", "Omar Haddad", "Grace Kim", "Jonas Weber",
          "Sofia Costa", "David Cohen", "Amara Okafor", "Liam Byrne", "Mei Chen", "Carlos Ruiz"]
ORGS = ["Northwind Air", "Blue Rail", "Harbor Hotels", "Summit Tours", "City Cabs", "Atlas Travel",
        "Sunrise Ferries", "Metro Bikes", "Alpine Lodges", "Coastal Bus", "Orbit Airlines", "Green Hostels"]
PLACES = ["Paris", "Lisbon", "Oslo", "Berlin", "Madrid", "Rome", "Vienna", "Prague", "Dublin", "Athens",
          "Tokyo", "Lima", "Cairo", "Nairobi", "Toronto", "Sydney", "Seoul", "Quebec", "Porto", "Kyoto"]
THINGS = ["hotel", "train", "flight", "tour", "ferry", "room", "museum", "guide", "breakfast", "bus"]
GOOD = ["wonderful", "excellent", "friendly", "clean", "comfortable", "delightful", "punctual", "superb",
        "charming", "relaxing"]
BAD = ["terrible", "dirty", "rude", "noisy", "awful", "uncomfortable", "late", "disappointing", "crowded",
       "overpriced"]

# NER templates: {P} person, {O} organisation, {L} place.
NER_TEMPLATES = [
    "{P} flew from {L} to {L} with {O} last week .",
    "{O} opened a new office in {L} this spring .",
    "Last summer {P} worked as a guide for {O} in {L} .",
    "{P} and {P} took the night train from {L} to {L} .",
    "The {T} in {L} was booked through {O} by {P} .",
    "{O} will add daily routes between {L} and {L} .",
    "In {L} , {P} met the manager of {O} .",
    "{P} wrote a long review of {O} after a trip to {L} .",
    "We stayed two nights in {L} before leaving for {L} .",
    "According to {P} , {O} is the best way to see {L} .",
    "The old {T} near the station in {L} was quiet .",
    "{P} says the {T} was on time .",
]
# Sentiment templates: {A} adjective of the review's polarity.
REVIEW_TEMPLATES = [
    "The {T} in {L} was {A} .",
    "Our {T} with {O} was {A} and {A} .",
    "Honestly the {T} was {A} , the staff were {A} .",
    "{O} gave us a {A} {T} .",
    "What a {A} {T} , everything felt {A} .",
    "The {T} was {A} from start to finish .",
    "I found the {T} {A} and the {T} {A} .",
    "Everyone said the {T} in {L} was {A} .",
]
RAW_TEMPLATES = NER_TEMPLATES + REVIEW_TEMPLATES + [
    "Trains from {L} to {L} leave every hour from the main station .",
    "Many visitors to {L} book a {T} before they arrive .",
    "The {T} costs less in winter than in summer .",
    "{O} sells tickets online and at the airport in {L} .",
]


def fill(template: str, rng: random.Random, adjectives=None):
    """The sentence's tokens and their IOB2 tags."""
    tokens, tags = [], []
    for piece in template.split():
        if piece in ("{P}", "{O}", "{L}"):
            label = {"{P}": "PERSON", "{O}": "ORG", "{L}": "LOC"}[piece]
            words = rng.choice({"PERSON": PEOPLE, "ORG": ORGS, "LOC": PLACES}[label]).split()
            tokens += words
            tags += [f"B-{label}"] + [f"I-{label}"] * (len(words) - 1)
        elif piece in ("{T}", "{A}"):
            tokens.append(rng.choice(THINGS if piece == "{T}" else adjectives or GOOD + BAD))
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


def main(out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(13)
    # NER sentences come from every template, reviews included: a model that never saw a
    # review sentence without entities tags half of each review as one.
    ner = [fill(rng.choice(RAW_TEMPLATES), rng) for _ in range(500)]
    write_conll(out_dir / "ner_train.conll", ner[:400])
    write_conll(out_dir / "ner_dev.conll", ner[400:])
    with (out_dir / "reviews_train.tsv").open("w", encoding="utf8") as train, \
            (out_dir / "reviews_dev.tsv").open("w", encoding="utf8") as dev:
        for i in range(400):
            label = "POS" if i % 2 == 0 else "NEG"
            tokens, _ = fill(rng.choice(REVIEW_TEMPLATES), rng, GOOD if label == "POS" else BAD)
            (train if i < 320 else dev).write(f"{label}\t{' '.join(tokens)}\n")
    with (out_dir / "raw.txt").open("w", encoding="utf8") as raw:
        for _ in range(6000):
            raw.write(" ".join(fill(rng.choice(RAW_TEMPLATES), rng)[0]) + "\n")
    with (out_dir / "raw_dev.txt").open("w", encoding="utf8") as raw:
        for _ in range(300):
            raw.write(" ".join(fill(rng.choice(RAW_TEMPLATES), rng)[0]) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "assets")
