#!/usr/bin/env python3
"""The walkthrough's first step: create `hello_milvus` (3000 rows: VarChar pk, a double, an 8-dim vector),
flush it into sealed segments, index and load it. Mirrors the upstream docs' prepare_data.py.

    python scripts/walkthrough/prepare_data.py [--uri http://localhost:19530] [--db default]
"""

from __future__ import annotations

import sys

from _common import COLLECTION, DIM, NUM_ENTITIES, client, parser, row


def main() -> int:
    args = parser(__doc__.splitlines()[0]).parse_args()
    from pymilvus import DataType, MilvusClient

    if args.db != "default":
        admin = MilvusClient(uri=args.uri, token=args.token)
        if args.db not in admin.list_databases():
            admin.create_database(args.db)
        admin.close()
    c = client(args)
    if c.has_collection(COLLECTION):
        print(f"{args.db}.{COLLECTION} exists: dropping it to start afresh")
        c.drop_collection(COLLECTION)
    schema = MilvusClient.create_schema(
        auto_id=False, enable_dynamic_field=False, description="hello_milvus is the simplest demo to introduce the APIs"
    )
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=100)
    schema.add_field("random", DataType.DOUBLE)
    schema.add_field("embeddings", DataType.FLOAT_VECTOR, dim=DIM)
    c.create_collection(COLLECTION, schema=schema, consistency_level="Strong")
    for start in range(0, NUM_ENTITIES, 1000):  # three inserts, three sealed segments
        c.insert(COLLECTION, [row(i) for i in range(start, min(start + 1000, NUM_ENTITIES))])
        c.flush(COLLECTION)
    index = c.prepare_index_params()
    index.add_index("embeddings", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 128})
    c.create_index(COLLECTION, index)
    c.load_collection(COLLECTION)
    count = c.query(COLLECTION, filter="", output_fields=["count(*)"])[0]["count(*)"]
    print(f"Number of entities in {args.db}.{COLLECTION}: {count}")
    c.close()
    return 0 if count == NUM_ENTITIES else 1


if __name__ == "__main__":
    sys.exit(main())
