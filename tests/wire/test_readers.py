from streamboot.wire.commands import parse_read_reply
from streamboot.wire.records import StreamEntry


def test_parses_resp2_and_resp3_shapes() -> None:
    rows = [["1-0", ["a", "1", "b", "2"]], ["2-0", None]]
    expected = [StreamEntry("1-0", {"a": "1", "b": "2"}, ["a", "1", "b", "2"]),
                StreamEntry("2-0", {})]
    assert parse_read_reply([["s", rows]]) == expected
    assert parse_read_reply({"s": rows}) == expected
    assert parse_read_reply(None) == []
    assert parse_read_reply([]) == []
    assert expected[1].deleted


def test_a_repeated_field_name_stays_visible_in_raw() -> None:
    (entry,) = parse_read_reply([["s", [["1-0", ["a", "1", "a", "2"]]]]])
    assert entry.fields == {"a": "2"}
    assert entry.raw == ["a", "1", "a", "2"]
    assert entry.pairs == ["a", "1", "a", "2"]
