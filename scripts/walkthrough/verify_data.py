#!/usr/bin/env python3
"""The walkthrough's last step: check a restored collection (default `hello_milvus_recover`) by count,
index, load and search. Mirrors the upstream docs' verify_data.py. Exit 0 when every check passes.

    python scripts/walkthrough/verify_data.py [--uri ...] [--db default] [--collection hello_milvus_recover]
                                              [--rows 3000] [--exact]

--rows is the live row count to expect (3000, what prepare_data.py writes). --exact also compares every
row with the values prepare_data.py wrote.
"""

from __future__ import annotations

import sys

from _common import COLLECTION, NUM_ENTITIES, client, parser, row


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--collection", default=COLLECTION + "_recover")
    p.add_argument("--rows", type=int, default=NUM_ENTITIES, help="rows to expect (default 3000)")
    p.add_argument("--exact", action="store_true", help="compare every row with what prepare_data.py wrote")
    args = p.parse_args()
    from pymilvus import DataType

    c = client(args)
    name = args.collection
    failures: list[str] = []
    if not c.has_collection(name):
        print(f"FAILED: {args.db}.{name} does not exist", file=sys.stderr)
        return 1
    desc = c.describe_collection(name)
    vector = next((f for f in desc["fields"] if f["type"] in (DataType.FLOAT_VECTOR, DataType.BINARY_VECTOR)), None)
    pk = next(f["name"] for f in desc["fields"] if f.get("is_primary"))
    if vector is None:
        print(f"FAILED: {name} has no vector field to search", file=sys.stderr)
        return 1
    if not c.list_indexes(name, field_name=vector["name"]):
        print(f"indexing {name}.{vector['name']} (IVF_FLAT, L2)")
        index = c.prepare_index_params()
        index.add_index(vector["name"], index_type="IVF_FLAT", metric_type="L2", params={"nlist": 128})
        c.create_index(name, index)
    else:
        print(f"{name}.{vector['name']} is indexed")
    c.load_collection(name)
    print(f"loaded {name}: {c.get_load_state(name)['state'].name}")
    count = c.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]
    print(f"Number of entities in {args.db}.{name}: {count}")
    if count != args.rows:
        failures.append(f"{count} rows, expected {args.rows}")
    sample = c.query(name, filter="", output_fields=["*"], limit=3)
    for probe in sample:
        hits = c.search(
            name,
            data=[probe[vector["name"]]],
            anns_field=vector["name"],
            limit=3,
            search_params={"metric_type": "L2", "params": {"nprobe": 16}},
            output_fields=[pk],
        )[0]
        if not hits or hits[0]["distance"] > 1e-4:
            failures.append(f"searching with row {probe[pk]!r}'s own vector did not find it first: {hits[:1]}")
    print(f"searched with {len(sample)} rows' own vectors: " + ("ok" if not failures else "FAILED"))
    if args.exact:
        got = {r[pk]: r for r in c.query(name, filter="", output_fields=["*"], limit=16384)}
        want = {r["pk"]: r for r in map(row, range(NUM_ENTITIES))}
        if set(got) != set(want):
            failures.append(
                f"primary keys differ: {len(set(want) - set(got))} missing, {len(set(got) - set(want))} extra"
            )
        for key in set(got) & set(want):
            have, expect = got[key], want[key]
            if have["random"] != expect["random"] or [float(x) for x in have["embeddings"]] != expect["embeddings"]:
                failures.append(f"row {key!r} differs: {have} != {expect}")
                break
        print("every row equals what prepare_data.py wrote" if not failures else "rows differ")
    c.close()
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
