"""murmur2 must equal the Java client's (and librdkafka's murmur2_random) bit for bit."""

import struct

import pytest

from producers.murmur2 import murmur2, murmur2_many, partition_for


def _signed(value: int) -> int:
    return int(struct.unpack("i", struct.pack("I", value))[0])


# vectors from Apache Kafka's UtilsTest.testMurmur2
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
    ids=["2-bytes", "6-bytes", "24-bytes", "26-bytes", "48-bytes", "3-bytes"],
)
def test_murmur2_matches_the_java_client(key: bytes, expected: int) -> None:
    assert _signed(murmur2(key)) == expected


def test_partition_is_positive_modulo() -> None:
    for key in (b"", b"x", b"1000000000001", "ü".encode()):
        assert 0 <= partition_for(key, 6) < 6
    assert partition_for(b"21", 7) == (murmur2(b"21") & 0x7FFFFFFF) % 7


def test_murmur2_many_equals_murmur2_for_every_length() -> None:
    import random

    rng = random.Random(3)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12))) for _ in range(3000)]
    keys += [str(1_000_000_000_000 + i * 31).encode() for i in range(500)]
    assert murmur2_many(keys) == [murmur2(k) for k in keys]
    same_length = [str(10**12 + i).encode() for i in range(64)]
    assert murmur2_many(same_length) == [murmur2(k) for k in same_length]
