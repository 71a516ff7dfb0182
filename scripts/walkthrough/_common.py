"""What the three walkthrough scripts share: where Milvus is, and the hello_milvus data they agree on."""

from __future__ import annotations

import argparse
import os

NUM_ENTITIES, DIM = 3000, 8
COLLECTION = "hello_milvus"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--uri",
        default=os.environ.get("MILVUS_URI", "http://localhost:19530"),
        help="Milvus address (default $MILVUS_URI or http://localhost:19530)",
    )
    p.add_argument("--db", default="default", help="database (default: default)")
    p.add_argument("--token", default=os.environ.get("MILVUS_TOKEN", ""), help="user:password, if Milvus wants one")
    return p


def client(args):
    from pymilvus import MilvusClient

    return MilvusClient(uri=args.uri, token=args.token, db_name=args.db)


def row(i: int) -> dict:
    """Row i of hello_milvus: the same values on every run, so a restore can be checked exactly."""
    return {
        "pk": str(i),
        "random": ((i * 7919) % 10007) / 10007.0,
        "embeddings": [((i * 31 + j * 17) % 997) / 1024.0 for j in range(DIM)],
    }
