"""Request bodies of `ferkit serve`, read into memory with a size limit and a time limit, never onto disk.

Starlette's own form parsing spools large file parts to a temporary file; these helpers read the body
(at most `max_bytes`) and split multipart/form-data in memory with python-multipart's streaming parser.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

MAX_PARTS = 64  # a multipart body with more parts than this is refused


class UploadError(Exception):
    """A request body that cannot be used; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


def _mb(n: int) -> str:
    return f"{n / 1_000_000:g} MB"


async def read_body(request, max_bytes: int, timeout: float) -> bytes:
    """The whole body, or UploadError 413 beyond `max_bytes`, 408 when it takes longer than `timeout` s."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise UploadError(400, f"bad Content-Length header {length!r}")
        if int(length) > max_bytes:
            raise UploadError(413, f"upload too large ({int(length):,} bytes); the limit is {_mb(max_bytes)}")
    body = bytearray()

    async def receive() -> None:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > max_bytes:
                raise UploadError(413, f"upload too large (over {_mb(max_bytes)}); "
                                       f"the limit is {_mb(max_bytes)}")

    try:
        await asyncio.wait_for(receive(), timeout)
    except asyncio.TimeoutError:
        raise UploadError(408, f"the upload did not arrive within {timeout:g} s") from None
    return bytes(body)


def is_multipart(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "multipart/form-data"


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """The parts of a multipart/form-data body, in order; UploadError 400 when it is malformed."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart/form-data without a boundary in its Content-Type")
    parts: list[Part] = []
    headers: dict[bytes, bytes] = {}
    field, value, data = bytearray(), bytearray(), bytearray()
    ended = []

    def on_part_begin() -> None:
        headers.clear()
        data.clear()
        if len(parts) >= MAX_PARTS:
            raise UploadError(400, f"too many parts in the form (more than {MAX_PARTS})")

    def on_header_field(chunk: bytes, start: int, end: int) -> None:
        field.extend(chunk[start:end])

    def on_header_value(chunk: bytes, start: int, end: int) -> None:
        value.extend(chunk[start:end])

    def on_header_end() -> None:
        headers[bytes(field).lower()] = bytes(value)
        field.clear()
        value.clear()

    def on_part_data(chunk: bytes, start: int, end: int) -> None:
        data.extend(chunk[start:end])

    def on_part_end() -> None:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        filename = disposition.get(b"filename")
        parts.append(Part(name=disposition.get(b"name", b"").decode("utf-8", "replace"),
                          filename=None if filename is None else filename.decode("utf-8", "replace"),
                          content_type=headers.get(b"content-type", b"").decode("latin-1"),
                          data=bytes(data)))

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data, "on_part_end": on_part_end,
                                        "on_end": lambda: ended.append(True)})
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise UploadError(400, f"malformed multipart/form-data body ({exc})") from None
    if not ended:
        raise UploadError(400, "malformed multipart/form-data body (it ends before its closing boundary)")
    return parts
