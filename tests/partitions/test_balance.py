"""Who owns which partition (partitions/balance.py): balanced, sticky, one answer for all."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streamboot.partitions.balance import balanced_owners, shares


def test_an_even_split_keeps_what_each_member_holds() -> None:
    owners = {0: "a", 1: "a", 2: "b", 3: "b"}
    assert balanced_owners(4, ["a", "b"], owners) == owners


def test_a_member_joining_takes_only_what_balance_requires() -> None:
    owners = {0: "a", 1: "a", 2: "b", 3: "b", 4: "a", 5: "b"}
    target = balanced_owners(6, ["a", "b", "c"], owners)
    moved = {p for p in owners if target[p] != owners[p]}
    assert len(moved) == 2  # one from each: 2 + 2 + 2
    assert sorted(target.values()).count("c") == 2
    assert all(target[p] == "c" for p in moved)


def test_a_member_leaving_gives_its_partitions_to_the_least_loaded() -> None:
    owners = {0: "a", 1: "b", 2: "c", 3: "a", 4: "b", 5: "c"}
    target = balanced_owners(6, ["a", "b"], {p: o for p, o in owners.items() if o != "c"})
    assert [target[p] for p in (0, 1, 3, 4)] == ["a", "b", "a", "b"]
    assert sorted(target[p] for p in (2, 5)) == ["a", "b"]


def test_more_members_than_partitions_leaves_standbys() -> None:
    target = balanced_owners(2, ["a", "b", "c", "d"], {})
    assert len(set(target.values())) == 2
    assert shares(2, ["a", "b", "c", "d"], {1: "d"})["d"] == 1


def test_no_live_member_no_target() -> None:
    assert balanced_owners(3, [], {0: "a"}) == {}


members_strategy = st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=7, unique=True)


@settings(max_examples=300, deadline=None)
@given(partitions=st.integers(1, 24), members=members_strategy,
       held=st.dictionaries(st.integers(0, 23), st.sampled_from("abcdefgh")))
def test_every_partition_has_one_balanced_owner_and_owners_keep_their_share(
        partitions: int, members: list[str], held: dict[int, str]) -> None:
    owners = {p: o for p, o in held.items() if p < partitions}
    target = balanced_owners(partitions, sorted(members), owners)
    assert sorted(target) == list(range(partitions))
    counts = [list(target.values()).count(m) for m in members]
    assert max(counts) - min(counts) <= 1
    assert sum(counts) == partitions
    # Sticky: a live member keeps min(what it held, its share) of what it held.
    quota = shares(partitions, sorted(members), owners)
    for m in members:
        had = [p for p, o in owners.items() if o == m]
        kept = [p for p in had if target[p] == m]
        assert len(kept) == min(len(had), quota[m])
    # The same facts in another order give the same answer (every member agrees).
    assert balanced_owners(partitions, sorted(members, reverse=True), owners) == target
