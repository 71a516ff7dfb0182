"""Fault injection between the engine and the object store, in the spirit of restic's backend tests.

`FaultyClient` wraps the `minio.Minio` client a `MinioStorage` talks through, so every fault passes
through the engine's real retry and error handling. Each rule names a client method and what goes
wrong there: a transient error (S3 503 SlowDown, a read timeout, a connection reset, a body cut off
mid-stream) the first N times each object is touched, an error every time, or a store that says yes
and keeps something else (a truncated or altered copy).
"""

from __future__ import annotations

import io
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from minio.error import S3Error


def slow_down(method: str, key: str) -> Exception:
    response = urllib3.HTTPResponse(status=503, body=b"")
    return S3Error(response, "SlowDown", "Please reduce your request rate.", key, "req", "host")


def read_timeout(method: str, key: str) -> Exception:
    return urllib3.exceptions.ReadTimeoutError(None, key, "Read timed out. (read timeout=300)")


def connection_reset(method: str, key: str) -> Exception:
    return urllib3.exceptions.ProtocolError(
        "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")
    )


def access_denied(method: str, key: str) -> Exception:
    response = urllib3.HTTPResponse(status=403, body=b"")
    return S3Error(response, "AccessDenied", "Access Denied.", key, "req", "host")


@dataclass
class Rule:
    method: str  # the Minio method: get_object, put_object, copy_object, stat_object, list_objects...
    error: Callable[[str, str], Exception] | None = None
    times: int = 1  # fail the first `times` calls for each key (0: every call)
    mid_stream: bool = False  # get_object: answer, then fail after the first bytes of the body
    keep: Callable[[bytes], bytes] | None = None  # copy/put: succeed, but store keep(data) instead
    match: str = ""  # only keys containing this


class _CutStream:
    """A response body that breaks after some bytes, as a connection dropped mid-download does."""

    def __init__(self, response: Any, error: Exception, after: int = 7):
        self._response, self._error, self._left = response, error, after

    def read(self, amt: int | None = None) -> bytes:
        if self._left <= 0 or amt is None:  # a whole-body read meets the cut, as urllib3's does
            raise self._error
        data = self._response.read(min(amt or self._left, self._left))
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._response.close()

    def release_conn(self) -> None:
        self._response.release_conn()


class FaultyClient:
    def __init__(self, client: Any, rules: list[Rule]):
        self._client = client
        self._rules = rules
        self._lock = threading.Lock()
        self._seen: Counter[tuple[int, str]] = Counter()
        self.injected: Counter[str] = Counter()  # method -> faults injected

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name == "_execute":  # the storage sends CopyObject and listings as bare requests
            return self._bare_request(attr)
        if not self._rules_for(name) or not callable(attr):
            return attr
        lazy = name == "list_objects"
        return lambda *args, **kwargs: self._call(name, args, kwargs, lambda: attr(*args, **kwargs), lazy)

    def _rules_for(self, name: str) -> list[tuple[int, Rule]]:
        return [(i, r) for i, r in enumerate(self._rules) if r.method == name]

    def _call(self, name: str, args: tuple, kwargs: dict, run: Callable[[], Any], lazy: bool = False) -> Any:
        """Method `name` called with args/kwargs, faults injected as the rules say; `run` calls it. A `lazy`
        method (minio's list_objects, a generator) fails when first iterated, as it would."""
        key = _key_of(name, args, kwargs)
        for index, rule in self._rules_for(name):
            if rule.match and rule.match not in key:
                continue
            with self._lock:
                self._seen[(index, key)] += 1
                due = rule.times == 0 or self._seen[(index, key)] <= rule.times
                if due:
                    self.injected[name] += 1
            if not due:
                continue
            if rule.keep is not None:
                result = run()
                self._replace(args, rule.keep)
                return result
            if rule.mid_stream:
                return _CutStream(run(), rule.error(name, key))
            if lazy:
                return _failing_iter(rule.error(name, key))
            raise rule.error(name, key)
        return run()

    def _bare_request(self, execute: Callable[..., Any]) -> Callable[..., Any]:
        """Minio._execute, where a PUT with an x-amz-copy-source header meets copy_object's rules and a
        ListObjectsV2 page (MinioStorage reads listings page by page) meets list_objects' rules."""

        def call(method: str, bucket: str, **kwargs: Any) -> Any:
            def run() -> Any:
                return execute(method, bucket, **kwargs)

            if method == "PUT" and "x-amz-copy-source" in (kwargs.get("headers") or {}):
                return self._call("copy_object", (bucket, kwargs.get("object_name", "")), {}, run)
            if _is_listing(kwargs):
                return self._call("list_objects", (method, bucket), kwargs, run)
            return run()

        return call

    def _replace(self, args: tuple, keep: Callable[[bytes], bytes]) -> None:
        bucket, key = args[0], args[1]
        response = self._client.get_object(bucket, key)
        try:
            data = keep(response.read())
        finally:
            response.close()
            response.release_conn()
        self._client.put_object(bucket, key, io.BytesIO(data), len(data))


def _failing_iter(error: Exception):
    raise error
    yield  # makes this a generator, as list_objects is


def _is_listing(kwargs: dict) -> bool:
    return "list-type" in (kwargs.get("query_params") or {})


def _key_of(method: str, args: tuple, kwargs: dict) -> str:
    if method == "list_objects":
        return str(kwargs.get("prefix", (kwargs.get("query_params") or {}).get("prefix", "")))
    return str(args[1]) if len(args) > 1 else str(kwargs.get("object_name", ""))


def inject(storage: Any, rules: list[Rule]) -> FaultyClient:
    """Put a FaultyClient between `storage` (a MinioStorage) and its server; returns it."""
    client = FaultyClient(storage._client, rules)
    storage._client = client
    return client
