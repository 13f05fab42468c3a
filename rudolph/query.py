"""rudolph's search language: a tokenizer and a recursive-descent parser into a typed AST.

    cat                      free word: labels, aliases, parents, OCR text, key words
    "no parking"             free phrase
    label:car  label:"sports car"   text:"no parking"   key:cars/2024/   bucket:dropzone
    status:done  has:text  has:faces  meta.content-id:cms-42
    person:"Ada Lovelace"  person:p1a2b3c4d5e6f7a8   a person by name or id (RUDOLPH_PEOPLE=on)
    faces:0  faces>=2  faces<3        confidence>=90 (applies to the label terms of the query)
    smile:yes  smile:no               a face smiles; faces, none smiling
    emotion:happy                     a face whose most likely emotion is that (Rekognition's)
    count>=3  count:1                 how many of a label's objects are in the image (the same)
    -label:cat  -word  -(a OR b)      exclude
    a AND b, a b (adjacency is AND), a OR b (AND binds tighter), ( ... )

Hand-written rather than a parser library: the grammar is a dozen lines, and a hand-written
scanner gives each mistake its own column and "write it like this" hint. The AST is turned into
OpenSearch query DSL by `rudolph.index.dsl`; user text only ever becomes a value there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rudolph.errors import RudolphError
from rudolph.record import EMOTION_TYPES
from rudolph.vocabulary import FINAL_STATUSES

#: Longest query accepted; longer input is a mistake, not a search.
MAX_QUERY_LENGTH = 256

#: Fields that take words or values after `:` (meta.<name> too).
TEXT_FIELDS = ("label", "text", "key", "bucket", "status", "has", "smile", "emotion", "person")
#: Fields compared with numbers.
NUMBER_FIELDS = ("faces", "confidence", "count")
#: Comparisons that bound the query's label terms rather than match on their own.
LABEL_BOUNDS = ("confidence", "count")
KNOWN_FIELDS = (*TEXT_FIELDS, *NUMBER_FIELDS, "meta.<name>")
#: The statuses a search can find: only finished records are indexed.
STATUSES = FINAL_STATUSES
HAS_VALUES = ("text", "faces", "labels")
SMILE_VALUES = ("yes", "no")
#: Rekognition's emotion types, as the query language writes them.
EMOTIONS = tuple(kind.lower() for kind in EMOTION_TYPES)

Operator = Literal[":", ">=", ">", "<=", "<"]
_FIELD = re.compile(r"(?P<name>[A-Za-z_][\w.\-]*)(?P<op>>=|<=|>|<|=|:)(?P<value>.*)", re.DOTALL)
_WORDY = re.compile(r"\w")


class QuerySyntaxError(RudolphError, ValueError):
    """A query rudolph cannot read; `str()` says what, where and how to write it, with a caret
    line under the query."""

    def __init__(self, query: str, column: int, problem: str, hint: str) -> None:
        self.query = query
        self.column = column  # 1-based
        self.problem = problem
        self.hint = hint
        shown = query.replace("\n", " ").replace("\t", " ")
        super().__init__(
            f"{problem} at column {column}: {hint}\n  {shown}\n  {' ' * (column - 1)}^"
        )


# -- the AST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """A word or phrase to find: `field` is "any" for free words, else a TEXT_FIELDS name or
    "meta.<name>"."""

    field: str
    value: str
    phrase: bool
    column: int


@dataclass(frozen=True)
class Compare:
    """`faces>=2`, `faces:0` (op ":"), `confidence>=90`, `count>=3`."""

    field: Literal["faces", "confidence", "count"]
    op: Operator
    number: float
    column: int


@dataclass(frozen=True)
class Not:
    child: Node
    column: int


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Everything:
    """The empty query: every image."""


Node = Term | Compare | Not | And | Or | Everything


@dataclass(frozen=True)
class Query:
    """A parsed query: what to match, and the bounds of its label terms: confidence
    (`confidence>=90`) and number of instances (`count>=3`)."""

    text: str
    node: Node
    confidence: tuple[Compare, ...] = ()
    count: tuple[Compare, ...] = ()

    def terms(self) -> list[Term]:
        """The terms a hit can match (not those under `-`), in order."""
        found: list[Term] = []

        def walk(node: Node) -> None:
            if isinstance(node, Term):
                found.append(node)
            elif isinstance(node, And | Or):
                for child in node.children:
                    walk(child)

        walk(self.node)
        return found

    def persons(self) -> list[str]:
        """The values of its `person:` terms (under `-` too), in order, each once: names or
        ids that the search resolves to images before translating the query."""
        found: list[str] = []

        def walk(node: Node) -> None:
            if isinstance(node, Term) and node.field == "person":
                found.append(node.value.strip())
            elif isinstance(node, And | Or):
                for child in node.children:
                    walk(child)
            elif isinstance(node, Not):
                walk(node.child)

        walk(self.node)
        return list(dict.fromkeys(found))


# -- tokens -------------------------------------------------------------------------------------

TokenKind = Literal["term", "compare", "(", ")", "AND", "OR", "-", "end"]


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    column: int
    node: Term | Compare | None = None


class _Scanner:
    def __init__(self, query: str) -> None:
        self.query = query
        self.at = 0

    def error(self, at: int, problem: str, hint: str) -> QuerySyntaxError:
        return QuerySyntaxError(self.query, at + 1, problem, hint)

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        q = self.query
        while True:
            while self.at < len(q) and q[self.at].isspace():
                self.at += 1
            if self.at >= len(q):
                out.append(Token("end", len(q) + 1))
                return out
            start, char = self.at, q[self.at]
            if char in "()":
                out.append(Token(char, start + 1))  # type: ignore[arg-type]
                self.at += 1
            elif char == "-":
                following = q[start + 1 : start + 2]
                if not following or following.isspace() or following in ")":
                    raise self.error(
                        start,
                        "a lone - excludes nothing",
                        "put what to exclude right after it: -cat, -label:cat, -(a OR b)",
                    )
                out.append(Token("-", start + 1))
                self.at += 1
            elif char == '"':
                value = self.phrase()
                out.append(Token("term", start + 1, self.free(value, True, start)))
            else:
                out.append(self.bare(start))

    def phrase(self) -> str:
        """A quoted phrase from the quote at `self.at`; `\\"` and `\\\\` escape."""
        start = self.at
        self.at += 1
        chars: list[str] = []
        q = self.query
        while self.at < len(q):
            char = q[self.at]
            if char == "\\" and q[self.at + 1 : self.at + 2] in ('"', "\\"):
                chars.append(q[self.at + 1])
                self.at += 2
                continue
            self.at += 1
            if char == '"':
                return "".join(chars)
            chars.append(char)
        raise self.error(
            start,
            "this quote is never closed",
            'close the phrase ("no parking"), or write \\" for a quote inside it',
        )

    def bare(self, start: int) -> Token:
        q = self.query
        while self.at < len(q) and not q[self.at].isspace() and q[self.at] not in '()"':
            self.at += 1
        run = q[start : self.at]
        if run in ("AND", "OR"):
            return Token(run, start + 1)  # type: ignore[arg-type]
        found = _FIELD.fullmatch(run)
        if found is None:
            return Token("term", start + 1, self.free(run, False, start))
        name, op, value = found["name"], found["op"], found["value"]
        value_at = start + found.start("value")
        quoted = False
        if not value and self.at < len(q) and q[self.at] == '"':
            value_at = self.at
            value, quoted = self.phrase(), True
        return self.field(name, ":" if op == "=" else op, value, quoted, start, value_at)

    def free(self, value: str, quoted: bool, start: int) -> Term:
        if not _WORDY.search(value):
            what = "this phrase" if quoted else f"{value!r}"
            raise self.error(
                start,
                f"{what} has no letters or digits to search for",
                "remove it; there are no wildcards (an empty query lists every image, "
                "key:folder/ finds keys by prefix)",
            )
        return Term("any", value.strip() if quoted else value, quoted, start + 1)

    def field(
        self, name: str, op: str, value: str, quoted: bool, start: int, value_at: int
    ) -> Token:
        lowered = name.lower()
        known = lowered in TEXT_FIELDS or lowered in NUMBER_FIELDS
        if lowered.startswith("meta.") and len(lowered) > len("meta."):
            known = True
        if not known:
            raise self.error(
                start,
                f"unknown field {name!r}",
                f"use one of {', '.join(KNOWN_FIELDS)}; to search the words themselves, "
                f'put them in quotes: "{name}{op}{value}"',
            )
        if not value:
            raise self.error(
                value_at,
                f"{lowered}{op} needs a value",
                f"write it right after {op}, like {_example(lowered)}",
            )
        if lowered in NUMBER_FIELDS:
            return Token("compare", start + 1, self.compare(lowered, op, value, start, value_at))
        if op not in (":", "="):
            raise self.error(
                start + len(name),
                f"{lowered} cannot be compared with {op}",
                f"use {lowered}:value, like {_example(lowered)}",
            )
        if lowered == "status" and value.lower() not in STATUSES:
            raise self.error(value_at, f"no status {value!r}", f"use one of {', '.join(STATUSES)}")
        if lowered == "has" and value.lower() not in HAS_VALUES:
            raise self.error(
                value_at, f"has:{value} is not known", f"use has:{', has:'.join(HAS_VALUES)}"
            )
        if lowered == "smile" and value.lower() not in SMILE_VALUES:
            raise self.error(value_at, f"smile:{value} is not known", "use smile:yes or smile:no")
        if lowered == "emotion" and value.lower() not in EMOTIONS:
            raise self.error(value_at, f"no emotion {value!r}", f"use one of {', '.join(EMOTIONS)}")
        if lowered in ("label", "text", "person") and not _WORDY.search(value):
            raise self.error(
                value_at,
                f"{lowered}: needs letters or digits",
                f"write the words to find, like {_example(lowered)}",
            )
        if lowered in ("status", "has", "smile", "emotion"):
            value = value.lower()
        return Token("term", start + 1, Term(lowered, value, quoted, start + 1))

    def compare(self, name: str, op: str, value: str, start: int, value_at: int) -> Compare:
        if name == "confidence" and op == ":":
            raise self.error(
                start + len(name),
                "confidence needs a comparison",
                "write confidence>=90 (or >, <, <=): labels at least that confident",
            )
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        whole = name in ("faces", "count")
        valid = number == number and (number.is_integer() or not whole)
        if not valid or not 0 <= number <= (100 if name == "confidence" else 10_000):
            kind = "a whole number" if whole else "a number from 0 to 100"
            raise self.error(value_at, f"{value!r} is not {kind}", f"write {_example(name)}")
        return Compare(name, op, number, start + 1)  # type: ignore[arg-type]


def _example(field_name: str) -> str:
    return {
        "label": "label:car",
        "text": 'text:"no parking"',
        "key": "key:cars/2024/",
        "bucket": "bucket:reindeer-dropzone",
        "status": "status:done",
        "has": "has:text",
        "smile": "smile:yes",
        "emotion": "emotion:happy",
        "person": 'person:"Ada Lovelace"',
        "faces": "faces:0 or faces>=2",
        "confidence": "confidence>=90",
        "count": "label:person count>=3",
    }.get(field_name, f"{field_name}:value")


# -- the parser ---------------------------------------------------------------------------------


class _Parser:
    """query := or? end;  or := and (OR and)*;  and := unary (AND? unary)*;
    unary := "-" primary | primary;  primary := term | compare | "(" or ")"."""

    def __init__(self, query: str, tokens: list[Token]) -> None:
        self.query = query
        self.tokens = tokens
        self.at = 0

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def error(self, column: int, problem: str, hint: str) -> QuerySyntaxError:
        return QuerySyntaxError(self.query, column, problem, hint)

    def starts_term(self) -> bool:
        return self.peek().kind in ("term", "compare", "(", "-")

    def parse(self) -> Node:
        if self.peek().kind == "end":
            return Everything()
        node = self.parse_or()
        token = self.peek()
        if token.kind == ")":
            raise self.error(token.column, "this ) closes nothing", "remove it, or add its (")
        assert token.kind == "end", token
        return node

    def parse_or(self) -> Node:
        children = [self.parse_and()]
        while self.peek().kind == "OR":
            operator = self.take()
            self.need_term(operator, "OR")
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self) -> Node:
        children = [self.parse_unary()]
        while True:
            if self.peek().kind == "AND":
                operator = self.take()
                self.need_term(operator, "AND")
            elif not self.starts_term():
                break
            children.append(self.parse_unary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def need_term(self, operator: Token, name: str) -> None:
        if not self.starts_term():
            raise self.error(
                operator.column,
                f"{name} needs a term after it",
                f"write a {name} b, or remove {name} (use lowercase {name.lower()} to search "
                "for the word)",
            )

    def parse_unary(self) -> Node:
        token = self.peek()
        if token.kind == "-":
            self.take()
            if self.peek().kind == "-":
                raise self.error(self.peek().column, "a double -", "exclude with a single -")
            return Not(self.parse_primary(), token.column)
        return self.parse_primary()

    def parse_primary(self) -> Node:
        token = self.take()
        if token.kind in ("term", "compare"):
            assert token.node is not None
            return token.node
        if token.kind == "(":
            if self.peek().kind == ")":
                raise self.error(
                    token.column, "empty parentheses", "put terms inside, or remove them"
                )
            node = self.parse_or()
            if self.peek().kind != ")":
                raise self.error(
                    token.column, "this ( is never closed", "add a ) after what it groups"
                )
            self.take()
            return node
        if token.kind == ")":
            raise self.error(token.column, "this ) closes nothing", "remove it, or add its (")
        if token.kind in ("AND", "OR"):
            raise self.error(
                token.column,
                f"{token.kind} needs a term before it",
                f"write a {token.kind} b (use lowercase {token.kind.lower()} to search for "
                "the word)",
            )
        raise self.error(token.column, "the query ends too early", "finish the term")


def _split_bounds(query: str, node: Node) -> tuple[Node, tuple[Compare, ...]]:
    """Take the `confidence` and `count` comparisons out of the top level: they bound the
    label terms."""
    top = node.children if isinstance(node, And) else (node,)
    bounds = tuple(c for c in top if isinstance(c, Compare) and c.field in LABEL_BOUNDS)
    rest = tuple(c for c in top if c not in bounds)

    def check(inner: Node) -> None:
        if isinstance(inner, Compare) and inner.field in LABEL_BOUNDS:
            example = "cat confidence>=90" if inner.field == "confidence" else "person count>=3"
            raise QuerySyntaxError(
                query,
                inner.column,
                f"{inner.field} applies to the whole query",
                f"put it at the top level, outside parentheses, OR and -: {example}",
            )
        if isinstance(inner, And | Or):
            for child in inner.children:
                check(child)
        elif isinstance(inner, Not):
            check(inner.child)

    for child in rest:
        check(child)
    if not rest:
        return Everything(), bounds
    return (rest[0] if len(rest) == 1 else And(rest)), bounds


def parse(query: str) -> Query:
    """The AST of `query`; raises QuerySyntaxError with the column of the first mistake."""
    if len(query) > MAX_QUERY_LENGTH:
        raise QuerySyntaxError(
            query[: MAX_QUERY_LENGTH + 20],
            MAX_QUERY_LENGTH + 1,
            f"the query is {len(query)} characters long",
            f"use at most {MAX_QUERY_LENGTH}",
        )
    tokens = _Scanner(query).tokens()
    node, bounds = _split_bounds(query, _Parser(query, tokens).parse())
    return Query(
        query,
        node,
        confidence=tuple(b for b in bounds if b.field == "confidence"),
        count=tuple(b for b in bounds if b.field == "count"),
    )
