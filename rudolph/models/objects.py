"""Object detections as Rekognition-style labels: names, parents, aliases and instance boxes.

Each COCO class the detector knows gets a display name. Its parents and aliases come from the
label taxonomy when it has that name (Dog -> Pet, Canine, Mammal, Animal), otherwise from the
table below, which also overrides the taxonomy where the COCO sense differs (a kite is a toy
here, not the hawk; a mouse is a computer's). Every parent becomes a label too, as
Rekognition's do, with the confidence of its most confident child.
"""

from __future__ import annotations

from collections.abc import Iterable

from rudolph.models.nanodet import Detection
from rudolph.models.taxonomy import Taxonomy
from rudolph.record import Box, Instance, Label

# COCO class -> (label, parents, aliases) where the taxonomy lacks the name or means another
# thing; None parents: take the taxonomy's.
_TABLE: dict[str, tuple[str, tuple[str, ...] | None, tuple[str, ...]]] = {
    "person": ("Person", (), ("Human",)),
    "airplane": ("Airplane", None, ("Aeroplane", "Plane")),
    "motorcycle": ("Motorcycle", None, ("Motorbike",)),
    "fire hydrant": ("Fire Hydrant", (), ("Hydrant",)),
    "stop sign": ("Stop Sign", ("Road Sign", "Sign", "Symbol"), ()),
    "traffic light": ("Traffic Light", ("Light",), ("Stoplight",)),
    "cow": ("Cow", ("Cattle", "Livestock", "Mammal", "Animal"), ()),
    "giraffe": ("Giraffe", ("Wildlife", "Mammal", "Animal"), ()),
    "handbag": ("Handbag", ("Bag", "Accessories"), ("Purse",)),
    "suitcase": ("Suitcase", ("Luggage",), ("Baggage",)),
    "frisbee": ("Frisbee", ("Toy",), ()),
    "skis": ("Ski", ("Sport",), ()),
    "snowboard": ("Snowboard", ("Sport",), ()),
    "sports ball": ("Ball", ("Sport",), ()),
    "kite": ("Kite", ("Toy",), ()),
    "baseball bat": ("Baseball Bat", ("Sport",), ()),
    "baseball glove": ("Baseball Glove", ("Sport",), ()),
    "skateboard": ("Skateboard", ("Sport",), ()),
    "surfboard": ("Surfboard", ("Sport",), ()),
    "tennis racket": ("Tennis Racket", ("Racket", "Sport"), ()),
    "wine glass": ("Wine Glass", ("Glass",), ()),
    "fork": ("Fork", ("Cutlery",), ()),
    "spoon": ("Spoon", ("Cutlery",), ()),
    "carrot": ("Carrot", ("Vegetable", "Produce", "Plant", "Food"), ()),
    "donut": ("Donut", ("Sweets", "Food"), ("Doughnut",)),
    "cake": ("Cake", ("Dessert", "Food"), ()),
    "potted plant": ("Potted Plant", ("Plant",), ("Houseplant",)),
    "toilet": ("Toilet", ("Bathroom",), ()),
    "tv": ("TV", ("Screen", "Electronics"), ("Television",)),
    "mouse": ("Mouse", ("Computer Hardware", "Electronics"), ("Computer Mouse",)),
    "remote": ("Remote Control", ("Electronics",), ()),
    "keyboard": ("Keyboard", ("Computer Hardware", "Electronics"), ()),
    "cell phone": ("Mobile Phone", ("Phone", "Electronics"), ("Cell Phone",)),
    "microwave": ("Microwave", ("Appliance",), ()),
    "oven": ("Oven", ("Appliance",), ()),
    "scissors": ("Scissors", ("Tool",), ()),
    "hair drier": ("Hair Dryer", ("Appliance",), ("Blow Dryer",)),
    "toothbrush": ("Toothbrush", ("Tool",), ()),
}


def label_of(coco: str, taxonomy: Taxonomy) -> tuple[str, list[str], list[str]]:
    """(name, parents, aliases) of a COCO class."""
    if coco in _TABLE:
        name, parents, aliases = _TABLE[coco]
        known = taxonomy.parents(name) if parents is None else list(parents)
        return name, known, list(dict.fromkeys([*aliases, *taxonomy.aliases(name)]))
    name = coco.title()
    return name, taxonomy.parents(name), taxonomy.aliases(name)


def _parents_of(name: str, taxonomy: Taxonomy) -> list[str]:
    for entry in _TABLE.values():
        if entry[0] == name and entry[1] is not None:
            return list(entry[1])
    return taxonomy.parents(name)


def detection_labels(
    detections: Iterable[Detection], width: int, height: int, taxonomy: Taxonomy
) -> list[Label]:
    """One label per class found, its instances boxed (ratios), and its parents as labels."""
    instances: dict[str, list[Instance]] = {}
    meta: dict[str, tuple[list[str], list[str]]] = {}
    for found in detections:
        name, parents, aliases = label_of(found.name, taxonomy)
        left, top, w, h = found.box
        box = Box(left=left / width, top=top / height, width=w / width, height=h / height)
        instances.setdefault(name, []).append(Instance(confidence=found.score * 100, box=box))
        meta[name] = (parents, aliases)
    labels: dict[str, Label] = {}
    for name, boxes in instances.items():
        boxes.sort(key=lambda i: -i.confidence)
        parents, aliases = meta[name]
        confidence = boxes[0].confidence
        labels[name] = Label(
            name=name, confidence=confidence, parents=parents, aliases=aliases, instances=boxes
        )
        for parent in parents:
            have = labels.get(parent)
            if have is None or have.confidence < confidence:
                labels[parent] = Label(
                    name=parent,
                    confidence=confidence,
                    parents=_parents_of(parent, taxonomy),
                    aliases=taxonomy.aliases(parent),
                    instances=have.instances if have else [],
                )
    return list(labels.values())
