"""Noisy, varied captions for pretraining the stand-in (like web alt-text).

The canonical Fashion-MNIST class names never appear in a caption (not even as
a substring): captions use synonyms, so zero-shot transfer to the canonical
names works only through shared sub-words and is imperfect, as CLIP's is.
A fraction ``noise`` of captions describe a random *other* class.
"""

from __future__ import annotations

import random

SYNONYMS: list[list[str]] = [
    ["tee", "tee shirt", "tank top", "crop top", "short sleeve top", "graphic tee", "jersey top"],  # T-shirt/top
    ["pants", "jeans", "slacks", "chinos", "leggings", "joggers", "cargo pants"],  # Trouser
    ["sweater", "jumper", "knit sweater", "cardigan", "sweatshirt", "hoodie", "wool knit"],  # Pullover
    ["gown", "frock", "sundress", "evening gown", "cocktail frock", "summer frock", "robe"],  # Dress
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


def caption(label: int, rng: random.Random, noise: float) -> str:
    """One random caption for an image of class ``label``; with probability ``noise`` of another class."""
    if rng.random() < noise:
        label = rng.choice([c for c in range(len(SYNONYMS)) if c != label])
    noun = rng.choice(SYNONYMS[label])
    adj = rng.choice(ADJECTIVES)
    return rng.choice(TEMPLATES).format(f"{adj} {noun}".strip())
