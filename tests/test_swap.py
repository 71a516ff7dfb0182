"""core.swap on a fake Milvus (names -> collection ids): a swap finishes from whatever step it stopped at.

The kill -9 tests in test_crash.py do the same against the real Milvus at the steps a pause point marks;
here every state between the steps is covered, and the intents' storage round trip.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from milvus_backup.core.milvus import Milvus
from milvus_backup.core.storage.local import LocalStorage
from milvus_backup.core.swap import RESTORING, SWAPPING, Swap, SwapIntents, finish, finish_interrupted

OLD, NEW = 11, 22


class FakeMilvus:
    """What the swap asks of Milvus, for one database: collections by name, aliases by name."""

    def __init__(self, collections: dict[str, int], aliases: dict[str, str]):
        self.collections = dict(collections)
        self.alias_to: dict[str, int] = {a: collections[c] for a, c in aliases.items()}

    def list_databases(self) -> list[str]:
        return ["default"]

    def list_collections(self, db: str) -> list[str]:
        return sorted(self.collections)

    def collection_id(self, db: str, name: str) -> int:
        return self.collections[name]

    def rename_collection(self, db: str, old: str, new: str) -> None:
        assert new not in self.collections
        self.collections[new] = self.collections.pop(old)

    def alter_alias(self, db: str, collection: str, alias: str) -> None:
        self.alias_to[alias] = self.collections[collection]

    def drop_collection(self, db: str, name: str) -> None:
        cid = self.collections.pop(name)
        assert cid not in self.alias_to.values(), "Milvus would refuse: it still has an alias"


SWAP = Swap("default", "t", "t_restoring_x", "t_replaced_x", OLD, NEW, ["a"])
# Each state a killed swap can leave: (collections by name, where alias "a" points)
STATES = {
    "not started": ({"t": OLD, "t_restoring_x": NEW}, "t"),
    "old aside": ({"t_replaced_x": OLD, "t_restoring_x": NEW}, "t_replaced_x"),
    "new in place": ({"t_replaced_x": OLD, "t": NEW}, "t_replaced_x"),
    "alias moved": ({"t_replaced_x": OLD, "t": NEW}, "t"),
    "old dropped": ({"t": NEW}, "t"),
}


@pytest.mark.parametrize("state", STATES)
def test_a_swap_finishes_from_any_step(state):
    collections, alias_on = STATES[state]
    milvus = FakeMilvus(collections, {"a": alias_on})
    said: list[str] = []
    finish(cast(Milvus, milvus), SWAP, said.append)
    assert milvus.collections == {"t": NEW}
    assert milvus.alias_to == {"a": NEW}
    assert said == ["default.t: replaced by the restored collection, aliases ['a'] moved"]


def test_when_the_restored_collection_is_gone_the_old_one_is_put_back():
    milvus = FakeMilvus({"t_replaced_x": OLD}, {"a": "t_replaced_x"})
    said: list[str] = []
    finish(cast(Milvus, milvus), SWAP, said.append)
    assert milvus.collections == {"t": OLD} and milvus.alias_to == {"a": OLD}
    assert "put the old one back" in said[0]


def test_a_target_holding_neither_is_left_alone():
    milvus = FakeMilvus({"t": 99}, {})
    said: list[str] = []
    finish(cast(Milvus, milvus), SWAP, said.append)
    assert milvus.collections == {"t": 99}
    assert "left as it is" in said[0]


def test_intents_round_trip_and_only_those_touching_the_targets_are_finished(tmp_path):
    intents = SwapIntents(LocalStorage(tmp_path), "files")
    other = Swap("default", "u", "u_restoring_y", "u_replaced_y", 5, 6)
    intents.write("r1", [SWAP], SWAPPING)
    intents.write("r2", [other], SWAPPING)
    assert intents.pending() == {"r1": (SWAPPING, [SWAP]), "r2": (SWAPPING, [other])}

    milvus: Any = FakeMilvus(
        {"t_replaced_x": OLD, "t_restoring_x": NEW, "u": 5, "u_restoring_y": 6}, {"a": "t_replaced_x"}
    )
    finish_interrupted(milvus, intents, {"default.t"}, lambda line: None)
    assert milvus.collections == {"t": NEW, "u": 5, "u_restoring_y": 6}
    assert intents.pending() == {"r2": (SWAPPING, [other])}


def test_a_restore_killed_before_its_swap_leaves_a_temporary_collection_the_next_one_drops(tmp_path):
    intents = SwapIntents(LocalStorage(tmp_path), "files")
    intents.write("r1", [SWAP], RESTORING)
    milvus: Any = FakeMilvus({"t": OLD, "t_restoring_x": NEW}, {"a": "t"})
    said: list[str] = []
    finish_interrupted(milvus, intents, {"default.t"}, said.append)
    assert milvus.collections == {"t": OLD} and milvus.alias_to == {"a": OLD}  # the old one untouched
    assert intents.pending() == {}
    assert "dropped t_restoring_x" in said[-1]
