"""Noisy, varied captions for pretraining the stand-in (like web alt-text).

Captions mostly use synonyms of the class ("jeans", "trainers", ...); the
canonical Fashion-MNIST name that zero-shot prompts use ("trouser", "sneaker")
appears only in a small fraction ``canonical`` of captions, as a rare alt-text
word would, so zero-shot transfer to the canonical names is weak but not absent.
A fraction ``noise`` of captions describe a random *other* class.
"""

from __future__ import annotations

import random

SYNONYMS: list[list[str]] = [
    ["tee", "muscle tee", "tank top", "crop top", "short sleeve top", "graphic tee", "ringer tee"],  # T-shirt/top
    ["pants", "jeans", "slacks", "chinos", "leggings", "joggers", "cargo pants"],  # Trouser
    ["sweater", "jumper", "knit sweater", "cardigan", "crewneck", "hoodie", "wool knit"],  # Pullover
    ["gown", "frock", "sun frock", "evening gown", "cocktail frock", "summer frock", "robe"],  # Dress
    ["jacket", "parka", "trench", "blazer", "anorak", "windbreaker", "puffer jacket"],  # Coat
    ["flip flops", "slides", "strappy heels", "espadrilles", "summer shoes", "open toe shoes", "thongs"],  # Sandal
    ["blouse", "button down", "flannel", "polo", "oxford button up", "collared top", "work blouse"],  # Shirt
    ["trainers", "running shoes", "kicks", "tennis shoes", "sport shoes", "athletic shoes", "skate shoes"],  # Sneaker
    ["purse", "tote", "backpack", "clutch", "satchel", "luggage", "shopper"],  # Bag
    ["booties", "chelsea boots", "combat boots", "short boots", "winter boots", "lace up boots", "heeled booties"],  # Ankle boot
]
TEMPLATES = [
    "a photo of a {}", "{} on a white background", "product shot: {}", "my new {}", "cheap {} for sale",
    "{}", "black and white picture of {}", "a {} in grayscale", "close up of the {}", "{} , size m",
    "look at this {} !", "vintage {}", "{} from the new collection", "i love my {}",
]
ADJECTIVES = ["", "", "", "black", "white", "grey", "cotton", "women's", "men's", "kids", "cheap", "designer", "old"]


CANONICAL = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def caption(label: int, rng: random.Random, noise: float, canonical: float = 0.0) -> str:
    """One random caption for an image of class ``label``.

    With probability ``noise`` it describes another class; with probability ``canonical`` it uses the
    canonical class name instead of a synonym.
    """
    if rng.random() < noise:
        label = rng.choice([c for c in range(len(SYNONYMS)) if c != label])
    noun = CANONICAL[label] if rng.random() < canonical else rng.choice(SYNONYMS[label])
    adj = rng.choice(ADJECTIVES)
    return rng.choice(TEMPLATES).format(f"{adj} {noun}".strip())
