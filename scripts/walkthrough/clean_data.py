#!/usr/bin/env python3
"""The walkthrough's clean-up: drop `hello_milvus` and `hello_milvus_recover` (the restored copy).
Mirrors the upstream docs' clean_data.py.

    python scripts/walkthrough/clean_data.py [--uri http://localhost:19530] [--db default]
"""

from __future__ import annotations

import sys

from _common import COLLECTION, client, parser


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "collections",
        nargs="*",
        default=[COLLECTION, COLLECTION + "_recover"],
        help="collections to drop (default: hello_milvus hello_milvus_recover)",
    )
    args = p.parse_args()
    c = client(args)
    for name in args.collections:
        if c.has_collection(name):
            c.drop_collection(name)
            print(f"dropped {args.db}.{name}")
        else:
            print(f"{args.db}.{name} does not exist")
    c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
