"""The collections table's listing when Milvus changes under it: a collection dropped between the listing
and its four requests is left out, where it used to fail the whole refresh ("cannot reach Milvus").
A unit test of core/milvus.py on a fake gRPC stub (the sandbox cannot drop a collection at that moment
on demand)."""

from __future__ import annotations

from typing import Any

from milvus_backup.core import milvus as m
from milvus_backup.core.config import MilvusConfig


class _Stub:
    """Answers for two listed collections, of which `gone` was dropped right after the listing."""

    def __init__(self, gone: str):
        self.gone = gone

    def __getattr__(self, method: str) -> Any:
        def call(request: Any, timeout: float) -> Any:
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
    m._import_pymilvus()
    client = m.Milvus.__new__(m.Milvus)  # no connection: the stub answers
    client.cfg, client.timeout, client._stub = MilvusConfig(), 5, _Stub(gone)
    return client


def test_a_collection_dropped_during_the_listing_is_left_out():
    summaries = _milvus(gone="dropped").collection_summaries("default")
    assert [(s.name, s.row_count, s.partitions) for s in summaries] == [("kept", 7, 1)]


def test_every_collection_still_there_is_listed():
    summaries = _milvus(gone="").collection_summaries("default")
    assert [(s.name, s.row_count) for s in summaries] == [("dropped", 7), ("kept", 7)]
