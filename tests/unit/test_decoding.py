"""Content decoding within the body cap: the codings of a response, the bounded decoder and
its decompressors, and a plain body counted against the cap. No network."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import tracemalloc
import zlib

import brotli
import pytest

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

from fetchpipe import ErrorKind, TransportError
from fetchpipe.engine.decoding import (
    MAX_MEMBERS,
    BoundedDecoder,
    PlainBody,
    accept_encoding,
    capped_body,
    content_encodings,
    decodable_encodings,
)

MiB = 1024 * 1024

# --- content encodings ------------------------------------------------------------------------


def test_content_encodings_in_the_order_applied() -> None:
    assert content_encodings(["gzip"], 2) == ("gzip",)
    assert content_encodings(["X-GZIP"], 2) == ("gzip",)
    assert content_encodings(["deflate, gzip"], 2) == ("deflate", "gzip")
    assert content_encodings(["gzip", "deflate"], 2) == ("gzip", "deflate")  # two header lines
    assert content_encodings(["identity", " , identity"], 2) == ()
    assert content_encodings(["identity, gzip"], 1) == ("gzip",)


def test_stacked_encodings_beyond_the_bound_are_refused() -> None:
    with pytest.raises(TransportError) as caught:
        content_encodings(["gzip, gzip, gzip"], 2)
    assert caught.value.kind is ErrorKind.OTHER
    assert "3 stacked content encodings (gzip, gzip, gzip), over max_encodings=2" in str(
        caught.value
    )
    assert content_encodings(["gzip, gzip, gzip"], 3) == ("gzip",) * 3


@pytest.mark.parametrize("coding", ["compress", "snappy"])
def test_codings_we_cannot_decode_are_refused_not_passed_through(coding: str) -> None:
    with pytest.raises(TransportError, match=f"encoded with '{coding}'") as caught:
        content_encodings([coding], 2)
    assert caught.value.kind is ErrorKind.OTHER
    assert "(gzip, deflate, br, zstd only)" in str(caught.value)


def test_br_and_zstd_are_decodable_and_advertised() -> None:
    assert decodable_encodings() == ("gzip", "deflate", "br", "zstd")
    assert accept_encoding() == "gzip, deflate, br, zstd"
    assert content_encodings(["BR", "zstd"], 2) == ("br", "zstd")


@pytest.mark.parametrize(
    ("coding", "install"), [("br", "pip install 'brotli>=1.2'"), ("zstd", "backports.zstd")]
)
def test_a_coding_whose_library_is_missing_says_what_to_install(coding: str, install: str) -> None:
    with pytest.raises(TransportError, match=f"encoded with '{coding}', which needs a library"):
        content_encodings([coding], 2, decodable=("gzip", "deflate"))
    with pytest.raises(TransportError, match=f"HINT: .*{re.escape(install)}"):
        content_encodings([coding], 2, decodable=("gzip", "deflate"))


def test_without_brotli_br_is_neither_advertised_nor_decoded() -> None:
    """A Python where neither Brotli binding can be imported (as with one older than 1.2)."""
    script = (
        "import sys\n"
        "sys.modules['brotli'] = sys.modules['brotlicffi'] = None\n"
        "from fetchpipe.engine.decoding import accept_encoding, content_encodings\n"
        "print(accept_encoding())\n"
        "try:\n"
        "    content_encodings(['br'], 2)\n"
        "except Exception as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    advertised, error = done.stdout.splitlines()
    assert advertised == "gzip, deflate, zstd"
    assert error.startswith("response body is encoded with 'br', which needs a library")
    assert "(decodable: gzip, deflate, zstd)" in error


PAYLOAD = b'{"items": [' + b", ".join(b"%d" % i for i in range(20000)) + b"]}"


def br(data: bytes) -> bytes:
    return brotli.compress(data, quality=5)  # as servers compress on the fly (11 is slow)


def decode(body: bytes, codings: tuple[str, ...], *, step: int = 4096, cap: int = MiB) -> bytes:
    decoder = BoundedDecoder(codings, cap)
    for start in range(0, len(body), step):
        decoder.feed(body[start : start + step])
    return decoder.finish()


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("step", [1, 7, 4096, 10**6])
def test_decoder_round_trips_in_any_chunking(step: int) -> None:
    assert decode(gzip.compress(PAYLOAD), ("gzip",), step=step) == PAYLOAD
    assert decode(zlib.compress(PAYLOAD), ("deflate",), step=step) == PAYLOAD
    assert decode(raw_deflate(PAYLOAD), ("deflate",), step=step) == PAYLOAD  # headerless
    stacked = gzip.compress(zlib.compress(PAYLOAD))  # deflate applied first, then gzip
    assert decode(stacked, ("deflate", "gzip"), step=step) == PAYLOAD
    members = gzip.compress(PAYLOAD[:1000]) + gzip.compress(PAYLOAD[1000:])
    assert decode(members, ("gzip",), step=step) == PAYLOAD


@pytest.mark.parametrize("step", [1, 7, 4096, 10**6])
def test_br_and_zstd_round_trip_in_any_chunking(step: int) -> None:
    assert decode(br(PAYLOAD), ("br",), step=step) == PAYLOAD
    assert decode(zstd.compress(PAYLOAD), ("zstd",), step=step) == PAYLOAD
    frames = zstd.compress(PAYLOAD[:1000]) + zstd.compress(PAYLOAD[1000:])  # RFC 8878 3.1
    assert decode(frames, ("zstd",), step=step) == PAYLOAD
    stacked = gzip.compress(br(PAYLOAD))  # br applied first, then gzip
    assert decode(stacked, ("br", "gzip"), step=step) == PAYLOAD
    assert decode(br(zstd.compress(PAYLOAD)), ("zstd", "br"), step=step) == PAYLOAD


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_decoder_of_an_empty_body(coding: str) -> None:
    assert decode(b"", (coding,)) == b""


@pytest.mark.parametrize(
    ("body", "codings"),
    [
        (gzip.compress(PAYLOAD), ("gzip",)),
        (zlib.compress(PAYLOAD), ("deflate",)),
        (gzip.compress(gzip.compress(PAYLOAD)), ("gzip", "gzip")),
        (gzip.compress(PAYLOAD) + gzip.compress(PAYLOAD)[:50], ("gzip",)),  # second member cut
    ],
)
@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_a_cut_off_compressed_stream_is_truncated(
    body: bytes, codings: tuple[str, ...], cut: float
) -> None:
    with pytest.raises(TransportError, match="ends early") as caught:
        decode(body[: int(len(body) * cut)], codings)
    assert caught.value.kind is ErrorKind.TRUNCATED


@pytest.mark.parametrize(
    ("body", "codings"),
    [
        (br(PAYLOAD), ("br",)),
        (zstd.compress(PAYLOAD), ("zstd",)),
        (zstd.compress(PAYLOAD) + zstd.compress(PAYLOAD)[:50], ("zstd",)),  # second frame cut
        (gzip.compress(br(PAYLOAD)), ("br", "gzip")),
    ],
)
@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_a_cut_off_br_or_zstd_stream_is_truncated(
    body: bytes, codings: tuple[str, ...], cut: float
) -> None:
    with pytest.raises(TransportError, match="ends early") as caught:
        decode(body[: int(len(body) * cut)], codings)
    assert caught.value.kind is ErrorKind.TRUNCATED


def test_a_br_stream_without_its_last_byte_is_truncated() -> None:
    body = br(PAYLOAD)
    with pytest.raises(TransportError, match="the br stream of the response body ends early"):
        decode(body[:-1], ("br",))


def test_a_cut_off_gzip_trailer_is_truncated() -> None:
    body = gzip.compress(PAYLOAD)
    with pytest.raises(TransportError, match="ends early"):
        decode(body[:-4], ("gzip",))  # the data is all there, the length check is not


def test_corrupt_data_is_refused() -> None:
    with pytest.raises(TransportError, match="not valid gzip data") as caught:
        decode(b"this is not gzip at all", ("gzip",))
    assert caught.value.kind is ErrorKind.OTHER
    with pytest.raises(TransportError, match="not valid gzip data"):
        decode(gzip.compress(PAYLOAD) + b"trailing junk", ("gzip",))


@pytest.mark.parametrize(
    ("body", "coding", "detail"),
    [
        (b"this is not brotli at all", "br", "not valid br data"),
        (br(PAYLOAD) + b"trailing junk", "br", "not valid br data"),
        (br(PAYLOAD)[:20] + bytes(200), "br", "not valid br data"),
        (b"this is not zstd at all", "zstd", "not valid zstd data (Unable to decompress"),
        (zstd.compress(PAYLOAD) + b"trailing junk", "zstd", "not valid zstd data"),
    ],
)
def test_corrupt_br_or_zstd_data_is_refused(body: bytes, coding: str, detail: str) -> None:
    with pytest.raises(TransportError, match=re.escape(detail)) as caught:
        decode(body, (coding,))
    assert caught.value.kind is ErrorKind.OTHER


def test_a_zstd_frame_with_a_window_over_8_mib_is_refused() -> None:
    """RFC 9659: no zstd window over 8 MiB in HTTP (the library would allow 128 MiB)."""
    data = bytes(range(256)) * (40 * 4096)  # 40 MiB
    wide = {zstd.CompressionParameter.window_log: 24}
    with pytest.raises(TransportError, match="window over 8 MiB, more than RFC 9659") as caught:
        decode(zstd.compress(data, options=wide), ("zstd",), cap=64 * MiB)
    assert caught.value.kind is ErrorKind.OTHER
    narrow = {zstd.CompressionParameter.window_log: 23}
    assert decode(zstd.compress(data, options=narrow), ("zstd",), cap=64 * MiB) == data


def test_too_many_zstd_frames_are_refused() -> None:
    frame = zstd.compress(b"x")
    assert decode(frame * MAX_MEMBERS, ("zstd",)) == b"x" * MAX_MEMBERS
    with pytest.raises(TransportError, match="more than 1024 concatenated frames"):
        decode(frame * (MAX_MEMBERS + 1), ("zstd",))


def test_too_many_members_are_refused() -> None:
    member = gzip.compress(b"x")
    assert decode(member * MAX_MEMBERS, ("gzip",)) == b"x" * MAX_MEMBERS
    with pytest.raises(TransportError, match="concatenated members"):
        decode(member * (MAX_MEMBERS + 1), ("gzip",))


def zeros_gzip(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    parts = [compressor.compress(block) for _ in range(size // MiB)]
    return b"".join([*parts, compressor.flush()])


def test_a_bomb_stops_at_the_cap_with_bounded_memory() -> None:
    bomb = gzip.compress(gzip.compress(zeros_gzip(64 * MiB)))  # 64 MiB from about 1 KB
    assert len(bomb) < 4096
    tracemalloc.start()
    try:
        with pytest.raises(TransportError, match="over max_body_size") as caught:
            decode(bomb, ("gzip", "gzip", "gzip"), cap=8 * MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.kind is ErrorKind.BODY_TOO_LARGE
    assert peak < 8 * MiB + 2 * MiB  # the cap plus a few 64 KiB steps


def zeros(size: int, coding: str) -> bytes:
    """``size`` zero bytes in ``coding``, compressed a mebibyte at a time."""
    block = bytes(MiB)
    if coding == "br":
        br = brotli.Compressor(quality=5)
        return b"".join([*(br.process(block) for _ in range(size // MiB)), br.finish()])
    if coding == "zstd":
        zs = zstd.ZstdCompressor()
        return b"".join([*(zs.compress(block) for _ in range(size // MiB)), zs.flush()])
    return zeros_gzip(size)


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_br_or_zstd_bomb_stops_at_the_cap_with_bounded_memory(coding: str) -> None:
    bomb = zeros(256 * MiB, coding)
    assert len(bomb) < 64 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(TransportError, match="over max_body_size") as caught:
            decode(bomb, (coding,), cap=8 * MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.kind is ErrorKind.BODY_TOO_LARGE
    assert peak < 8 * MiB + 2 * MiB  # the cap plus a few steps


def test_a_bomb_fails_alike_whatever_its_coding() -> None:
    """The same kind and message for every coding, but for the coding's name."""
    messages = set()
    for coding in ("gzip", "br", "zstd"):
        with pytest.raises(TransportError) as caught:
            decode(zeros(16 * MiB, coding), (coding,), step=1 << 30, cap=4 * MiB)
        assert caught.value.kind is ErrorKind.BODY_TOO_LARGE
        message = str(caught.value)
        assert message.startswith("response body is over max_body_size (4194304 bytes; decoded ")
        assert f"; Content-Encoding {coding}). HINT: raise Limits.max_body_size" in message
        messages.add(re.sub(r"decoded \d+ bytes", "decoded N bytes", message).replace(coding, "C"))
    assert len(messages) == 1


def test_the_encoded_size_is_bounded_too() -> None:
    decoder = BoundedDecoder(("deflate",), 1000)
    with pytest.raises(TransportError, match="encoded body's Content-Length"):
        decoder.check_length(10 * MiB)
    stored = zlib.compressobj(0)  # level 0: no compression, the body never expands
    body = stored.compress(bytes(200_000)) + stored.flush()
    with pytest.raises(TransportError, match="over max_body_size") as caught:
        decode(body, ("deflate",), cap=100_000)
    assert caught.value.kind is ErrorKind.BODY_TOO_LARGE


# --- a body within the cap --------------------------------------------------------------------


def test_a_plain_body_is_its_chunks_within_the_cap() -> None:
    body = capped_body([], None, 10, 2)
    assert isinstance(body, PlainBody)
    for chunk in (b"abc", b"", b"defg"):
        body.feed(chunk)
    assert body.finish() == b"abcdefg"
    assert capped_body(["identity"], 5, 10, 2).finish() == b""


def test_a_plain_body_over_the_cap_is_refused_as_it_arrives() -> None:
    body = capped_body([], None, 10, 2)
    body.feed(b"x" * 10)
    with pytest.raises(TransportError, match=r"\(10 bytes; read 11 bytes so far\)") as caught:
        body.feed(b"y")
    assert caught.value.kind is ErrorKind.BODY_TOO_LARGE


def test_a_content_length_over_the_cap_is_refused_before_reading() -> None:
    with pytest.raises(TransportError, match=r"\(10 bytes; Content-Length is 11\)") as caught:
        capped_body([], 11, 10, 2)
    assert caught.value.kind is ErrorKind.BODY_TOO_LARGE
    with pytest.raises(TransportError, match="encoded body's Content-Length is 99999"):
        capped_body(["gzip"], 99_999, 10, 2)


def test_an_encoded_body_goes_through_the_bounded_decoder() -> None:
    body = capped_body(["deflate", "gzip"], None, MiB, 2)
    assert isinstance(body, BoundedDecoder)
    body.feed(gzip.compress(zlib.compress(PAYLOAD)))
    assert body.finish() == PAYLOAD
    with pytest.raises(TransportError, match="over max_encodings=1"):
        capped_body(["deflate", "gzip"], None, MiB, 1)
