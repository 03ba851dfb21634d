"""The producer -> pipeline contract: how trades travel in an SQS message body.

A body is newline-delimited JSON, one Binance ``@trade`` event object per line exactly as received
(``{"e":"trade","E":...,"s":"BTCUSDT","t":...,"p":"...","q":"...","T":...,"m":true,"M":true}``).
When the message attribute ``content-encoding`` is ``gzip``, the body is base64 of the gzipped NDJSON.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from dataclasses import dataclass

from tasks.errors import DecodeError

CONTENT_ENCODING = "content-encoding"
GZIP = "gzip"


@dataclass(frozen=True, slots=True)
class EncodedBody:
    body: str
    gzipped: bool
    lines: int

    @property
    def attributes(self) -> dict[str, str]:
        """Message attributes to send with the body."""
        return {CONTENT_ENCODING: GZIP} if self.gzipped else {}


def encode_body(lines: list[bytes], gzip_min_bytes: int) -> EncodedBody:
    """Join trade lines into one body, gzipped and base64-encoded when at least ``gzip_min_bytes``."""
    raw = b"\n".join(lines)
    if len(raw) >= gzip_min_bytes:
        packed = base64.b64encode(gzip.compress(raw, compresslevel=5, mtime=0)).decode("ascii")
        if len(packed) < len(raw):
            return EncodedBody(packed, True, len(lines))
    return EncodedBody(raw.decode("utf-8"), False, len(lines))


def decode_body(body: str, content_encoding: str | None, max_bytes: int) -> bytes:
    """The NDJSON bytes of a message body; ``DecodeError`` says why when the body breaks the contract."""
    if content_encoding is None or content_encoding == "":
        data = body.encode("utf-8")
    elif content_encoding == GZIP:
        try:
            compressed = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecodeError(f"content-encoding=gzip but the body is not base64: {exc}") from exc
        try:
            inflater = zlib.decompressobj(wbits=31)
            data = inflater.decompress(compressed, max_bytes + 1)
        except zlib.error as exc:
            raise DecodeError(f"content-encoding=gzip but the body is not gzip: {exc}") from exc
        if not inflater.eof and len(data) <= max_bytes:
            raise DecodeError("content-encoding=gzip but the gzip stream is truncated")
    else:
        raise DecodeError(f"unknown content-encoding {content_encoding!r}; expected 'gzip' or none")
    if len(data) > max_bytes:
        raise DecodeError(
            f"decoded body is larger than {max_bytes} bytes (setting CANDLEFLOW_MAX_BODY_BYTES)"
        )
    return data
