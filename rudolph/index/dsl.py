"""A parsed query (rudolph.query) as OpenSearch query DSL.

User text only ever becomes the value of a term, match, match_phrase, prefix or range query.
A free word is one dis_max over reasons ("tiers") of fixed scores: the score of a hit is its best
reason, plus up to 3.1 for the confidence of the label that matched (whole percent / 32) and
1/1024 of its other reasons (at most ~0.6). The tiers are 10 apart (5 around a phrase across
OCR lines), more than those extras can add, so an exact label beats a plural of it, which beats
a synonym, an alias, a parent, a phrase of OCR text within a line, then one across lines, and,
last, a word of the object key; among equal reasons the more confident label
wins. Every part is a whole number times a power of two, so a score is exact in float and double
alike, and search_after on _score never skips a hit. Each tier is named "<tier>#<term number>",
so a hit says which terms matched it and why (see rudolph.index.search).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rudolph.index.mapping import SYNONYM_ANALYZER
from rudolph.query import And, Compare, Everything, Node, Not, Or, Query, Term

TIERS: dict[str, float] = {
    "label": 110,
    "label~": 100,
    "label=": 90,  # a synonym of the label ("automobile" for Car, "puppies" for Dog)
    "alias": 80,
    "alias~": 70,
    "parent": 60,
    "parent~": 50,
    "parent=": 40,
    "text": 30,
    "text+": 25,  # a phrase across consecutive OCR lines (text_all)
    "text~": 20,
    "key": 10,
}
TIE_BREAKER = 1 / 1024

_HAS: dict[str, dict[str, Any]] = {
    "text": {"term": {"has_text": True}},
    "faces": {"range": {"face_count": {"gte": 1}}},
    "labels": {"exists": {"field": "labels"}},
}
_SMILE: dict[str, dict[str, Any]] = {
    # some face smiles
    "yes": {"range": {"smiling_faces": {"gte": 1}}},
    # faces a backend looked at for a smile, none smiling (a record without the attribute,
    # analysed before it existed, matches neither)
    "no": {
        "bool": {
            "filter": [
                {"range": {"unsmiling_faces": {"gte": 1}}},
                {"term": {"smiling_faces": 0}},
            ]
        }
    },
}
_RANGE = {">=": "gte", ">": "gt", "<=": "lte", "<": "lt"}

# Label-side fields: top-level (fast), and in label_details (to bound the confidence).
_TOP = {"label": "labels", "alias": "label_aliases", "parent": "label_parents"}
_NESTED = {
    "label": "label_details.name",
    "alias": "label_details.aliases",
    "parent": "label_details.parents",
}


def _match(field: str, term: Term) -> dict[str, Any]:
    options: dict[str, Any] = {"query": term.value}
    if term.phrase:
        return {"match_phrase": {field: options}}
    return {"match": {field: options | {"operator": "and"}}}


def _filter(clause: dict[str, Any]) -> dict[str, Any]:
    """A condition that does not score (a hit's score stays its reasons')."""
    return {"bool": {"filter": [clause]}}


def _across_lines(term: Term) -> dict[str, Any]:
    """The phrase in the whole OCR text, lines joined in reading order."""
    return {"match_phrase": {"text_all": {"query": term.value}}}


class Translator:
    """One query's translation; numbers its terms the way `Query.terms` lists them."""

    def __init__(self, query: Query, persons: Mapping[str, Sequence[str]] | None = None) -> None:
        self.query = query
        #: A `person:` value -> the image ids with a face of that person (resolved before).
        self.persons = persons or {}
        self.confidence = {_RANGE[c.op]: c.number for c in query.confidence}
        count: dict[str, int] = {}
        for c in query.count:
            number = int(c.number)
            count |= {"gte": number, "lte": number} if c.op == ":" else {_RANGE[c.op]: number}
        # What bounds a label term: it must match one label_details entry within them all.
        self.bounds: list[dict[str, Any]] = []
        if self.confidence:
            self.bounds.append({"range": {"label_details.confidence": self.confidence}})
        if count:
            self.bounds.append({"range": {"label_details.instances": count}})
        self.numbers = {id(term): n for n, term in enumerate(query.terms())}

    def label_side(self, term: Term, kind: str, how: str) -> dict[str, Any]:
        """`kind` (label, alias, parent) matched exactly (""), stemmed ("~") or by synonym ("=")."""
        fields = _NESTED if self.bounds else _TOP
        field = fields[kind]
        clause: dict[str, Any]
        if how == "":
            clause = {"term": {field: term.value}}
        elif how == "~":
            clause = _match(f"{field}.text", term)
        else:
            # A phrase: a synonym is one more token at the same position, which an "and"
            # match would require as well.
            phrase = {"query": term.value, "analyzer": SYNONYM_ANALYZER}
            clause = {"match_phrase": {f"{field}.text": phrase}}
        if not self.bounds:
            return clause
        return {
            "nested": {
                "path": "label_details",
                "query": {"bool": {"filter": [clause, *self.bounds]}},
            }
        }

    def tier(self, name: str, term: Term, clause: dict[str, Any]) -> dict[str, Any]:
        named = f"{name}#{self.numbers.get(id(term), -1)}"
        return {"constant_score": {"filter": clause, "boost": TIERS[name], "_name": named}}

    def confidence_boost(self, term: Term, kinds: tuple[str, ...]) -> dict[str, Any]:
        """Among equal reasons, the more confident label first (adds whole percent / 32)."""
        should: list[dict[str, Any]] = []
        for kind in kinds:
            field = _NESTED[kind]
            should += [{"term": {field: term.value}}, _match(f"{field}.text", term)]
        query: dict[str, Any] = {"bool": {"should": should, "minimum_should_match": 1}}
        if self.bounds:
            query["bool"]["filter"] = list(self.bounds)
        return {
            "nested": {
                "path": "label_details",
                "score_mode": "max",
                "query": {
                    "function_score": {
                        "query": query,
                        "field_value_factor": {
                            "field": "label_details.rank",
                            "factor": 1 / 32,
                            "missing": 0,
                        },
                        "boost_mode": "replace",
                    }
                },
            }
        }

    def labels(self, term: Term, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
        tiers = []
        for kind in kinds:
            for how in ("", "~", "="):
                if f"{kind}{how}" in TIERS:
                    tiers.append(self.tier(f"{kind}{how}", term, self.label_side(term, kind, how)))
        return tiers

    def words(
        self, term: Term, kinds: tuple[str, ...], more: list[dict[str, Any]]
    ) -> dict[str, Any]:
        tiers = self.labels(term, kinds) + more
        return {
            "bool": {
                "must": [{"dis_max": {"queries": tiers, "tie_breaker": TIE_BREAKER}}],
                "should": [self.confidence_boost(term, kinds)],
            }
        }

    def term(self, term: Term) -> dict[str, Any]:
        field = term.field
        if field == "any":
            more = [self.tier("text", term, {"match_phrase": {"text": {"query": term.value}}})]
            if " " in term.value.strip():  # one word is never across lines
                more.append(self.tier("text+", term, _across_lines(term)))
            if not term.phrase:
                more.append(self.tier("text~", term, _match("text", term)))
            more.append(self.tier("key", term, _match("key.text", term)))
            return self.words(term, ("label", "alias", "parent"), more)
        if field == "label":
            return self.words(term, ("label", "alias"), [])
        if field == "text":
            within = self.tier("text", term, {"match_phrase": {"text": {"query": term.value}}})
            across = self.tier("text+", term, _across_lines(term))
            return {"dis_max": {"queries": [within, across], "tie_breaker": TIE_BREAKER}}
        if field == "key":
            return self.tier("key", term, {"prefix": {"key": {"value": term.value}}})
        if field == "bucket":
            return _filter({"term": {"bucket": term.value}})
        if field == "status":
            return _filter({"term": {"status": term.value}})
        if field == "has":
            return _filter(_HAS[term.value])
        if field == "smile":
            return _filter(_SMILE[term.value])
        if field == "emotion":
            return _filter({"term": {"face_emotions": term.value}})
        if field == "person":  # no such person: no image (an empty ids query matches none)
            images = list(self.persons.get(term.value.strip(), ()))
            return _filter({"ids": {"values": images}})
        name = field.removeprefix("meta.")
        return _filter({"term": {"metadata": f"{name}={term.value}"}})

    def compare(self, compare: Compare) -> dict[str, Any]:
        # Only faces reach here: confidence and count bounds were taken out by the parser.
        number = int(compare.number)
        if compare.op == ":":
            return _filter({"term": {"face_count": number}})
        return _filter({"range": {"face_count": {_RANGE[compare.op]: number}}})

    def node(self, node: Node) -> dict[str, Any]:
        if isinstance(node, Term):
            return self.term(node)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Not):
            return {"bool": {"must_not": [self.node(node.child)]}}
        if isinstance(node, And):
            return {"bool": {"must": [self.node(child) for child in node.children]}}
        if isinstance(node, Or):
            return {
                "bool": {
                    "should": [self.node(child) for child in node.children],
                    "minimum_should_match": 1,
                }
            }
        assert isinstance(node, Everything)
        return {"match_all": {}}

    def translate(self) -> dict[str, Any]:
        clause = self.node(self.query.node)
        has_label_terms = any(t.field in ("any", "label") for t in self.query.terms())
        if self.bounds and not has_label_terms:
            # No label term to bound: images with some label that confident, or that many times.
            bounded = {"bool": {"filter": list(self.bounds)}}
            clause = {
                "bool": {
                    "must": [clause],
                    "filter": [{"nested": {"path": "label_details", "query": bounded}}],
                }
            }
        return clause


def to_dsl(query: Query, persons: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The query DSL clause of a parsed query; `persons` gives the images of each of its
    `person:` values."""
    return Translator(query, persons).translate()
