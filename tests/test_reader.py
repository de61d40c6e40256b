from framework.reader import parse_read_reply
from framework.records import StreamEntry


def test_parses_resp2_and_resp3_shapes() -> None:
    rows = [["1-0", ["a", "1", "b", "2"]], ["2-0", None]]
    expected = [StreamEntry("1-0", {"a": "1", "b": "2"}), StreamEntry("2-0", {})]
    assert parse_read_reply([["s", rows]]) == expected
    assert parse_read_reply({"s": rows}) == expected
    assert parse_read_reply(None) == []
    assert parse_read_reply([]) == []
    assert expected[1].deleted
