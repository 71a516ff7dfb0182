"""Replace an existing collection with a restored one so that no moment of it can lose either.

A drop-existing restore never drops the old collection up front: it restores into a temporary
collection, checks it, and only then swaps. The swap is four Milvus calls, each of which may be the
last a killed process makes, so before the first one the restore writes its intent (which names, which
collection IDs, which aliases) to `<rootPath>/backup_restore_swaps/<restore id>.json` in the Milvus
bucket. The steps, each safe to repeat:

1. rename the old collection aside (`<target>_replaced_<tag>`): the target name is free;
2. rename the restored collection to the target name;
3. point the old collection's aliases at it (AlterAlias: readers never find an alias missing);
4. drop the old collection; then remove the intent.

The collection IDs in the intent say which collection holds which name at any moment, so `finish`
can tell where a killed swap stopped and complete it. It always goes forward: the restored collection
was whole and checked before the intent was written. If it has vanished (dropped by hand), the old
collection is renamed back instead. The next restore of the same target finishes such a swap first.

The intent is first written (stage "restoring") before the temporary collection is created, so a
restore killed while it fills one leaves a record of it too: the next restore of that target drops
the temporary collection (the old one was never touched) instead of leaving it behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from milvus_backup.core.errors import BackupToolError, NotFound
from milvus_backup.core.milvus import Milvus
from milvus_backup.core.paths import swap_intent, swap_intents_root
from milvus_backup.core.pause import pause_point
from milvus_backup.core.storage import ObjectNotFound, Storage

Say = Callable[[str], None]
RESTORING = "restoring"  # temporary collections being filled; the old ones untouched
SWAPPING = "swapping"  # every temporary collection is whole and checked; the swap has begun


@dataclass
class Swap:
    """One collection to replace: `restored` (a temporary name) takes the place of `target`."""

    db: str
    target: str
    restored: str
    aside: str  # where the old collection waits until the new one holds the name
    old_id: int
    new_id: int
    aliases: list[str] = field(default_factory=list)  # the old collection's, moved to the new one

    @property
    def label(self) -> str:
        return f"{self.db}.{self.target}"


class SwapIntents:
    """The intents of swaps under way, one JSON object per restore, in the Milvus bucket."""

    def __init__(self, storage: Storage, milvus_root: str):
        self.storage = storage
        self.root = milvus_root

    def write(self, restore_id: str, swaps: list[Swap], stage: str = SWAPPING) -> None:
        body = {"restore_id": restore_id, "stage": stage, "swaps": [asdict(s) for s in swaps]}
        self.storage.write(swap_intent(self.root, restore_id), json.dumps(body).encode())

    def remove(self, restore_id: str) -> None:
        self.storage.delete(swap_intent(self.root, restore_id))

    def pending(self) -> dict[str, tuple[str, list[Swap]]]:
        """restore id -> (stage, swaps), for every intent left behind (by a killed restore, or one running now)."""
        found: dict[str, tuple[str, list[Swap]]] = {}
        for obj in self.storage.list(swap_intents_root(self.root) + "/"):
            try:
                body = json.loads(self.storage.read(obj.key))
                found[str(body["restore_id"])] = (str(body.get("stage", SWAPPING)), [Swap(**s) for s in body["swaps"]])
            except (ObjectNotFound, ValueError, KeyError, TypeError):
                continue  # removed meanwhile, or not ours: nothing to finish
        return found


def _ids(milvus: Milvus, db: str, *names: str) -> dict[str, int]:
    present = set(milvus.list_collections(db)) if db in milvus.list_databases() else set()
    ids = {}
    for name in names:
        if name in present:
            try:
                ids[name] = milvus.collection_id(db, name)
            except NotFound:
                pass
    return ids


def finish(milvus: Milvus, swap: Swap, say: Say) -> None:
    """Carry `swap` through from wherever it stopped (from the start, for a new swap)."""
    ids = _ids(milvus, swap.db, swap.target, swap.restored, swap.aside)
    if ids.get(swap.target) == swap.old_id:
        milvus.rename_collection(swap.db, swap.target, swap.aside)
        ids[swap.aside] = ids.pop(swap.target)
        pause_point("restore:swap:aside")
    if swap.target not in ids:
        if ids.get(swap.restored) == swap.new_id:
            milvus.rename_collection(swap.db, swap.restored, swap.target)
            ids[swap.target] = ids.pop(swap.restored)
            pause_point("restore:swap:renamed")
        elif ids.get(swap.aside) == swap.old_id:  # the restored collection is gone: put the old one back
            milvus.rename_collection(swap.db, swap.aside, swap.target)
            say(f"{swap.label}: the restored collection is gone; put the old one back under its name")
            return
    if ids.get(swap.target) != swap.new_id:
        say(f"{swap.label}: holds neither the old nor the restored collection any more; left as it is")
        return
    for alias in swap.aliases:
        milvus.alter_alias(swap.db, swap.target, alias)
    if ids.get(swap.aside) == swap.old_id:
        milvus.drop_collection(swap.db, swap.aside)
    say(
        f"{swap.label}: replaced by the restored collection"
        + (f", aliases {swap.aliases} moved" if swap.aliases else "")
    )


def discard(milvus: Milvus, swap: Swap, say: Say) -> None:
    """Drop the temporary collection of a restore that stopped before its swap (the old one is untouched)."""
    ids = _ids(milvus, swap.db, swap.restored)
    if swap.restored in ids and swap.new_id in (0, ids[swap.restored]):  # 0: killed before it was recorded
        milvus.drop_collection(swap.db, swap.restored)
        say(f"{swap.label}: dropped {swap.restored}, left half-filled by an interrupted restore")


def finish_interrupted(milvus: Milvus, intents: SwapIntents, targets: set[str], say: Say) -> None:
    """Finish every swap left behind that touches one of `targets` ("db.name"), or drop the temporary
    collections of a restore that stopped before its swap; then forget the intent."""
    for restore_id, (stage, swaps) in intents.pending().items():
        if not any(s.label in targets for s in swaps):
            continue
        if stage == RESTORING:
            say(f"restore {restore_id} was interrupted before replacing collections; removing what it left")
        else:
            say(f"restore {restore_id} was interrupted while replacing collections; finishing its swap first")
        try:
            for swap in swaps:
                (discard if stage == RESTORING else finish)(milvus, swap, say)
        except BackupToolError as exc:
            raise BackupToolError(
                f"could not finish the interrupted swap of restore {restore_id} ({exc}); "
                f"see {intents.storage.describe(swap_intent(intents.root, restore_id))}"
            ) from None
        intents.remove(restore_id)
