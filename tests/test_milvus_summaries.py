"""The collections table's listing. When Milvus changes under it, a collection dropped between the listing
and its requests is left out, where it used to fail the whole refresh ("cannot reach Milvus"): a unit
test on a fake gRPC stub (the sandbox cannot drop a collection at that moment on demand). And its
connection, the tool's own gRPC channel without pymilvus's import, against the sandbox and pymilvus's client."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

from milvus_backup.core import milvus as m
from milvus_backup.core.config import MilvusConfig, load_config
from milvus_backup.core.engine import Engine
from tests.conftest import pymilvus_summaries, summarised


class _Stub:
    """Answers for two listed collections, of which `gone` was dropped right after the listing."""

    def __init__(self, gone: str):
        self.gone = gone

    def __getattr__(self, method: str) -> Any:
        def call(request: Any, timeout: float, metadata: Any = None) -> Any:
            pb, common = m.milvus_pb2, m.common_pb2
            if method == "ShowCollections":
                return pb.ShowCollectionsResponse(collection_names=["kept", "dropped"], collection_ids=[1, 2])
            if request.collection_name == self.gone:
                missing = common.Status(error_code=common.UnexpectedError, reason="collection not found[dropped]")
                return getattr(pb, f"{method}Response")(status=missing)
            if method == "GetCollectionStatistics":
                return pb.GetCollectionStatisticsResponse(stats=[common.KeyValuePair(key="row_count", value="7")])
            if method == "GetLoadState":
                return pb.GetLoadStateResponse(state=common.LoadStateNotLoad)
            if method == "ShowPartitions":
                return pb.ShowPartitionsResponse(partition_names=["_default"], partitionIDs=[10])
            return pb.DescribeIndexResponse()

        return call


def _milvus(gone: str) -> m.Milvus:
    m._load_protos()
    client = m.Milvus.__new__(m.Milvus)  # no connection: the stub answers
    client.cfg, client.timeout, client._stub = MilvusConfig(), 5, _Stub(gone)
    return client


def test_a_collection_dropped_during_the_listing_is_left_out():
    summaries = _milvus(gone="dropped").collection_summaries("default")
    assert [(s.name, s.row_count, s.partitions) for s in summaries] == [("kept", 7, 1)]


def test_every_collection_still_there_is_listed():
    summaries = _milvus(gone="").collection_summaries("default")
    assert [(s.name, s.row_count) for s in summaries] == [("dropped", 7), ("kept", 7)]


def test_the_tool_reads_every_collection_as_pymilvus_client_does(sandbox, base_config):
    """The tool's own gRPC channel (no pymilvus import) reads every field as pymilvus's client does, the
    demo's loaded and indexed collections included, in every database. The listing's early answer (what
    the app shows first) names every one of them, with its id, before any is described."""
    early: list[m.CollectionSummary] = []
    engine = Engine(base_config)
    try:
        listed = engine.list_collections(early=early.extend)
    finally:
        engine.close()
    expected = pymilvus_summaries(sandbox.milvus_uri)
    assert summarised(listed) == expected
    assert {"default", "shop"} <= {row[0] for row in expected}
    assert any(s.live_rows is not None and s.indexes for s in listed)  # a loaded, indexed one was compared
    assert sorted(early, key=lambda c: (c.db_name, c.name)) == [
        m.CollectionSummary.listed(c.db_name, c.name, c.collection_id) for c in listed
    ]
    assert not any(c.described for c in early) and all(c.described for c in listed)


def test_the_engine_never_imports_pymilvus(sandbox):
    """pymilvus's import (pandas and numpy with it) costs every process about 0.6 s of CPU and 55 MiB: neither
    the collections listing nor a backup (flush, segments, describe, indexes) loads it."""
    name = f"nopymilvus_{uuid.uuid4().hex[:8]}"
    code = (
        "import json, sys\n"
        "from milvus_backup.core.service import BackupRequest, load_config, open_service\n"
        f"engine = open_service(load_config({str(sandbox.config_path)!r}, env={{}}))\n"
        "names = [f'{c.db_name}.{c.name}' for c in engine.list_collections()]\n"
        f"job = engine.start_backup(BackupRequest(name={name!r}, collections=['hello_milvus']))\n"
        "job.wait()\n"
        "engine.close()\n"
        "heavy = sorted(m for m in ('pymilvus', 'pandas', 'numpy') if m in sys.modules)\n"
        "print(json.dumps([names, str(job.state), heavy]))\n"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        names, state, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
        assert sorted(names) == [f"{db}.{coll}" for db, coll, *_ in pymilvus_summaries(sandbox.milvus_uri)]
        assert state == "success" and heavy == []
    finally:
        Engine(load_config(sandbox.config_path, env={})).delete_backup(name)
