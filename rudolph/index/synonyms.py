"""The search-time synonym rules, from the taxonomy's WordNet data (`scripts/build_taxonomy.py`).

They ship inline in the index settings (Amazon OpenSearch Service allows no synonyms_path file
without a package), and `expansions` reads them here too, to say which label a synonym matched.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from importlib import resources


@cache
def rules() -> tuple[str, ...]:
    """The rules in synonym_graph's Solr format ("car, auto, automobile", "puppy => puppy, dog")."""
    text = (resources.files("rudolph") / "data" / "taxonomy.json").read_text("utf-8")
    return tuple(json.loads(text).get("synonyms", []))


def fold(value: str) -> str:
    """Lowercase without accents, as the `lowercase` normalizer and the label analyzers do."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def singulars(word: str) -> set[str]:
    """`word` and the singulars it may be the plural of (a rough english stemmer)."""
    out = {word}
    if word.endswith("ies") and len(word) > 4:
        out.add(word[:-3] + "y")
    if word.endswith("es") and len(word) > 3:
        out.add(word[:-2])
    if word.endswith("s") and len(word) > 2:
        out.add(word[:-1])
    return out


@cache
def _table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for rule in rules():
        left, arrow, right = rule.partition("=>")
        sources = [fold(w) for w in left.split(",")]
        targets = [fold(w) for w in (right if arrow else left).split(",")]
        for source in sources:
            table.setdefault(source, set()).update(targets)
    return {source: frozenset(targets) for source, targets in table.items()}


_SPACES = re.compile(r"\s+")


def expansions(term: str) -> set[str]:
    """The words a search for `term` also finds through the rules (folded), besides itself."""
    wanted = _SPACES.sub(" ", fold(term))
    table = _table()
    out: set[str] = set()
    for form in singulars(wanted):
        out |= table.get(form, frozenset())
    return out - {wanted}
