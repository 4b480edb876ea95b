"""CircuitStore: a worker pool's pickled circuits by content key, for workers that lost them."""

from __future__ import annotations

import collections

DEFAULT_STORE_BYTES = 512 * 2**20


class CircuitStore:
    """Keeps every circuit a pool was sent, so a worker can refill its cache.

    A circuit travels to a worker with the first chunk that needs it; later
    chunks name it by key only. A worker that restarted (empty cache) or evicted
    the key asks this store. Owns: pickled circuits, LRU-bounded by bytes.
    Concurrency: a synchronous actor with no CPU reservation. Ordering: none
    needed; a key is put before any chunk names it without its bytes.
    Called by: :class:`~raysession.backends.AerBackend` (put) and its workers (get).
    """

    def __init__(self, limit_bytes: int = DEFAULT_STORE_BYTES) -> None:
        self._data: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._bytes = 0
        self._limit = limit_bytes

    def put(self, key: str, data: bytes) -> None:
        """Keep ``data`` under ``key`` (content keys: an existing entry is the same bytes)."""
        if key in self._data:
            self._data.move_to_end(key)
            return
        self._data[key] = data
        self._bytes += len(data)
        while self._bytes > self._limit and len(self._data) > 1:
            _, old = self._data.popitem(last=False)
            self._bytes -= len(old)

    def get(self, key: str) -> bytes | None:
        """The pickled circuit under ``key``, or ``None`` if it was never put or was evicted."""
        data = self._data.get(key)
        if data is not None:
            self._data.move_to_end(key)
        return data

    def size(self) -> tuple[int, int]:
        """Number of circuits kept and their bytes."""
        return len(self._data), self._bytes
