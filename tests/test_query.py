"""The search language's parser: every operator, precedence, and errors with their columns."""

from __future__ import annotations

import pytest

from rudolph.errors import RudolphError
from rudolph.query import (
    MAX_QUERY_LENGTH,
    And,
    Compare,
    Everything,
    Not,
    Or,
    QuerySyntaxError,
    Term,
    parse,
)


def word(value: str, column: int) -> Term:
    return Term("any", value, False, column)


def test_empty_and_blank_queries_match_everything() -> None:
    assert parse("").node == Everything()
    assert parse("   ").node == Everything()


def test_a_free_word_and_a_phrase() -> None:
    assert parse("cat").node == word("cat", 1)
    assert parse('"no parking"').node == Term("any", "no parking", True, 1)


def test_adjacency_is_and() -> None:
    assert parse("red car").node == And((word("red", 1), word("car", 5)))
    assert parse("red AND car").node == And((word("red", 1), word("car", 9)))


def test_and_binds_tighter_than_or() -> None:
    assert parse("a b OR c").node == Or((And((word("a", 1), word("b", 3))), word("c", 8)))
    assert parse("a OR b AND c").node == Or((word("a", 1), And((word("b", 6), word("c", 12)))))


def test_parentheses_group() -> None:
    assert parse("a (b OR c)").node == And((word("a", 1), Or((word("b", 4), word("c", 9)))))


def test_fields() -> None:
    node = parse('label:car text:"no parking" key:cars/2024/ bucket:b status:DONE has:text').node
    assert node == And(
        (
            Term("label", "car", False, 1),
            Term("text", "no parking", True, 11),
            Term("key", "cars/2024/", False, 29),
            Term("bucket", "b", False, 44),
            Term("status", "done", False, 53),
            Term("has", "text", False, 65),
        )
    )
    assert parse("meta.content-id:cms-42").node == Term("meta.content-id", "cms-42", False, 1)
    assert parse("Label:Car").node == Term("label", "Car", False, 1)


@pytest.mark.parametrize(
    ("query", "op", "number"),
    [
        ("faces:0", ":", 0),
        ("faces>=2", ">=", 2),
        ("faces>1", ">", 1),
        ("faces<3", "<", 3),
        ("faces<=4", "<=", 4),
        ("faces=2", ":", 2),
    ],
)
def test_face_comparisons(query: str, op: str, number: int) -> None:
    assert parse(query).node == Compare("faces", op, number, 1)  # type: ignore[arg-type]


def test_smile_and_emotion_take_known_values_in_any_case() -> None:
    node = parse("smile:YES emotion:Happy -smile:no").node
    assert node == And(
        (
            Term("smile", "yes", False, 1),
            Term("emotion", "happy", False, 11),
            Not(Term("smile", "no", False, 26), 25),
        )
    )
    for emotion in ("sad", "angry", "confused", "disgusted", "surprised", "calm", "fear"):
        assert parse(f"emotion:{emotion}").node == Term("emotion", emotion, False, 1)


def test_confidence_bounds_the_whole_query() -> None:
    parsed = parse("cat confidence>=90 confidence<99.5")
    assert parsed.node == word("cat", 1)
    assert parsed.confidence == (
        Compare("confidence", ">=", 90, 5),
        Compare("confidence", "<", 99.5, 20),
    )
    assert parse("confidence>90").node == Everything()


def test_count_bounds_the_label_terms_too() -> None:
    parsed = parse("label:person count>=3 confidence>=80")
    assert parsed.node == Term("label", "person", False, 1)
    assert parsed.count == (Compare("count", ">=", 3, 14),)
    assert parsed.confidence == (Compare("confidence", ">=", 80, 23),)
    assert parse("dog count:2").count == (Compare("count", ":", 2, 5),)


def test_exclusion() -> None:
    assert parse("-cat").node == Not(word("cat", 2), 1)
    assert parse("dog -label:cat").node == And(
        (word("dog", 1), Not(Term("label", "cat", False, 6), 5))
    )
    assert parse("-(a OR b)").node == Not(Or((word("a", 3), word("b", 8))), 1)


def test_terms_are_the_ones_a_hit_can_match() -> None:
    assert [t.value for t in parse("a -b (c OR text:d)").terms()] == ["a", "c", "d"]


def test_escapes_inside_a_phrase() -> None:
    assert parse(r'"say \"hi\" \\ now"').node == Term("any", 'say "hi" \\ now', True, 1)


def test_lowercase_and_or_are_words() -> None:
    assert parse("cats and dogs").node == And((word("cats", 1), word("and", 6), word("dogs", 10)))


def test_punctuation_inside_a_word_is_kept_for_the_analyzer() -> None:
    assert parse("cat* 12:30").node == And((word("cat*", 1), word("12:30", 6)))


@pytest.mark.parametrize(
    ("query", "column", "says"),
    [
        ('"no parking', 1, "quote is never closed"),
        ('cat"', 4, "quote is never closed"),
        ("foo:bar", 1, "unknown field 'foo'"),
        ("cat foo:bar", 5, "label, text, key, bucket, status, has, smile, emotion, person, faces"),
        ("smile:maybe", 7, "smile:maybe is not known"),
        ("cat smile:", 11, "smile: needs a value"),
        ("smile>=1", 6, "smile cannot be compared with >="),
        ("emotion:joy", 9, "no emotion 'joy'"),
        ('-emotion:"very happy"', 10, "use one of happy, sad, angry, confused, disgusted"),
        ("*", 1, "no letters or digits"),
        ("cat *", 5, "no wildcards"),
        ("{", 1, "no letters or digits"),
        ("\\", 1, "no letters or digits"),
        (":", 1, "no letters or digits"),
        ('""', 1, "no letters or digits"),
        ("label:", 7, "label: needs a value"),
        ('text:"  "', 6, "text: needs letters or digits"),
        ("(cat", 1, "( is never closed"),
        ("cat)", 4, ") closes nothing"),
        ("()", 1, "empty parentheses"),
        ("AND cat", 1, "AND needs a term before it"),
        ("cat OR", 5, "OR needs a term after it"),
        ("cat AND OR dog", 5, "AND needs a term after it"),
        ("cat - dog", 5, "a lone - excludes nothing"),
        ("--cat", 2, "a double -"),
        ("faces>=two", 8, "not a whole number"),
        ("faces:1.5", 7, "not a whole number"),
        ("confidence>=120", 13, "not a number from 0 to 100"),
        ("confidence:90", 11, "confidence needs a comparison"),
        ("label>=3", 6, "label cannot be compared with >="),
        ("status:lost", 8, "no status 'lost'"),
        ("has:wings", 5, "has:wings is not known"),
        ("a OR cat confidence>=90", 10, "confidence applies to the whole query"),
        ("-(confidence>9)", 3, "confidence applies to the whole query"),
        ("person count>=2.5", 15, "not a whole number"),
        ("cat OR person count>=3", 15, "count applies to the whole query"),
    ],
)
def test_errors_point_at_the_column(query: str, column: int, says: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    error = caught.value
    assert error.column == column
    assert error.query == query
    message = str(error)
    assert says in message
    assert f"at column {column}:" in message
    shown, caret = message.splitlines()[-2:]
    assert shown == f"  {query}"
    assert caret == "  " + " " * (column - 1) + "^"


def test_a_syntax_error_is_a_rudolph_error_and_a_value_error() -> None:
    with pytest.raises(RudolphError):
        parse("(")
    with pytest.raises(ValueError):
        parse("(")


def test_too_long_a_query() -> None:
    parse("a" * MAX_QUERY_LENGTH)
    with pytest.raises(QuerySyntaxError, match="at most 256") as caught:
        parse("a" * (MAX_QUERY_LENGTH + 1))
    assert caught.value.column == MAX_QUERY_LENGTH + 1


def test_person_by_name_or_id_and_the_values_to_resolve() -> None:
    query = parse('person:"Ada Lovelace" OR -person:p0123456789abcde cat')
    assert query.node == Or(
        (
            Term("person", "Ada Lovelace", True, 1),
            And(
                (
                    Not(Term("person", "p0123456789abcde", False, 27), 26),
                    Term("any", "cat", False, 51),
                )
            ),
        )
    )
    # Excluded ones too: the search resolves every person: value to its images first.
    assert query.persons() == ["Ada Lovelace", "p0123456789abcde"]
    with pytest.raises(QuerySyntaxError, match='person:"Ada Lovelace"'):
        parse('person:"..."')
