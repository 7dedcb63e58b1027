"""Kafka's default partitioner: murmur2 of the key bytes, exactly as the Java client computes it.

librdkafka's ``murmur2_random`` partitioner is the same function for keyed messages, so a
record routed here lands on the partition a plain producer would pick for
``key=transaction_id`` (CONTRACT §3).
"""

from __future__ import annotations

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """32-bit murmur2 hash (unsigned) with Kafka's seed."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length & ~3
    for i in range(0, end, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """Partition of ``key`` among ``partitions``: ``(murmur2(key) & 0x7fffffff) % partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def murmur2_many(keys: list[bytes]) -> list[int]:
    """``murmur2`` of many keys at once (numpy over keys of a common length); same results."""
    return _many(keys, None)


def partitions_many(keys: list[bytes], partitions: int) -> list[int]:
    """``partition_for`` of many keys at once."""
    return _many(keys, partitions)


def _many(keys: list[bytes], partitions: int | None) -> list[int]:
    import numpy as np

    lengths = [len(k) for k in keys]
    out = [0] * len(keys)
    pending = list(range(len(keys)))
    m = np.uint32(_M)
    while pending:
        # the commonest length goes through numpy; the rest loops until few are left
        length = max(set(lengths[i] for i in pending[:64]), key=lambda n: lengths.count(n))
        where = [i for i in pending if lengths[i] == length]
        pending = [i for i in pending if lengths[i] != length]
        if len(where) < 16:
            for i in where + pending:
                hashed = murmur2(keys[i])
                out[i] = hashed if partitions is None else (hashed & 0x7FFFFFFF) % partitions
            return out
        n = len(where)
        data = np.frombuffer(b"".join([keys[i] for i in where]), dtype=np.uint8)
        data = data.reshape(n, length)
        h = np.full(n, (_SEED ^ length) & _MASK, dtype=np.uint32)
        end = length & ~3
        if end:
            blocks = np.ascontiguousarray(data[:, :end]).view("<u4")
            for j in range(end // 4):
                k = blocks[:, j] * m
                k ^= k >> np.uint32(24)
                k *= m
                h *= m
                h ^= k
        rest = length & 3
        if rest == 3:
            h ^= data[:, end + 2].astype(np.uint32) << np.uint32(16)
        if rest >= 2:
            h ^= data[:, end + 1].astype(np.uint32) << np.uint32(8)
        if rest >= 1:
            h ^= data[:, end].astype(np.uint32)
            h *= m
        h ^= h >> np.uint32(13)
        h *= m
        h ^= h >> np.uint32(15)
        if partitions is not None:
            h = (h & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)
        values = h.tolist()
        if n == len(keys):
            return list(values)
        for i, value in zip(where, values, strict=True):
            out[i] = value
    return out
