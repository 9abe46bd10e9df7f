"""Baking Open Badges into images, and the default badge image.

A baked PNG carries the assertion in an uncompressed ``iTXt`` chunk with the
keyword ``openbadges`` (Open Badges 2.0 Baking Specification); an Open Badges
3.0 credential goes in a second chunk, ``openbadgecredential``. A baked SVG
carries the assertion as an ``<openbadges:assertion>`` element, in the
``http://openbadges.org`` namespace, right after the root ``<svg>`` tag.

Pillow writes the chunks; :func:`unbake_png` reads them with a plain chunk
parser, so a reader sees exactly what is in the file, compressed or not.
"""

from __future__ import annotations

import functools
import io
import re
import struct
import textwrap
import zlib
from collections.abc import Iterator, Mapping
from xml.etree import ElementTree

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OB2_KEYWORD = "openbadges"
OB3_KEYWORD = "openbadgecredential"
SVG_NAMESPACE = "http://openbadges.org"
DEFAULT_IMAGE_SIZE = 400

KIND_COLORS = {
    "macro": ("#7a5200", "#f2c14e"),
    "level": ("#1d3f72", "#6aa5e8"),
    "skill": ("#1f5c3a", "#6cc497"),
    "item": ("#4b3575", "#b59be0"),
}
"""Ring and fill colours of the default image, per badge kind."""


class BakingError(ValueError):
    """The image is not a PNG or SVG that can carry a baked badge."""


# --- PNG ----------------------------------------------------------------------------


def bake_png(image: bytes, chunks: Mapping[str, str]) -> bytes:
    """Return ``image`` re-encoded with one uncompressed iTXt chunk per keyword in ``chunks``.

    Text chunks already in the image are dropped, so baking a baked image
    replaces its badge instead of adding a second one.

    Raises:
        BakingError: ``image`` is not a PNG.
    """
    if not image.startswith(PNG_SIGNATURE):
        raise BakingError("the badge image is not a PNG file")
    with Image.open(io.BytesIO(image)) as source:
        source.load()
        info = PngImagePlugin.PngInfo()
        for keyword, text in chunks.items():
            info.add_itxt(keyword, text, zip=False)
        output = io.BytesIO()
        source.save(output, format="PNG", pnginfo=info)
    return output.getvalue()


def png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield (chunk type, chunk data) for each chunk of a PNG file.

    Raises:
        BakingError: the signature, a length or a CRC is wrong.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise BakingError("not a PNG file")
    offset = len(PNG_SIGNATURE)
    while offset < len(data):
        if offset + 8 > len(data):
            raise BakingError("truncated PNG chunk header")
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 8 + length
        if end + 4 > len(data):
            raise BakingError(f"truncated PNG chunk {kind!r}")
        body = data[offset + 8:end]
        (crc,) = struct.unpack(">I", data[end:end + 4])
        if zlib.crc32(kind + body) != crc:
            raise BakingError(f"CRC mismatch in PNG chunk {kind!r}")
        yield kind, body
        if kind == b"IEND":
            return
        offset = end + 4


def parse_itxt(body: bytes) -> tuple[str, bool, str]:
    """Split an iTXt chunk into (keyword, compressed, text)."""
    keyword, _, rest = body.partition(b"\x00")
    if len(rest) < 2:
        raise BakingError("truncated iTXt chunk")
    compressed, method = rest[0], rest[1]
    _language, _, rest = rest[2:].partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    if compressed:
        if method != 0:
            raise BakingError(f"unknown iTXt compression method {method}")
        text = zlib.decompress(text)
    return keyword.decode("latin-1"), bool(compressed), text.decode("utf-8")


def unbake_png(data: bytes, keyword: str = OB2_KEYWORD) -> str | None:
    """Return the text baked under ``keyword`` (the assertion by default), or None.

    Raises:
        BakingError: ``data`` is not a well-formed PNG.
    """
    for kind, body in png_chunks(data):
        if kind == b"iTXt":
            name, _, text = parse_itxt(body)
            if name == keyword:
                return text
    return None


# --- SVG ----------------------------------------------------------------------------

_SVG_ROOT = re.compile(r"<svg\b[^>]*?(/?)>", re.IGNORECASE)


def _cdata(text: str) -> str:
    # "]]>" would end the section early, so it is split across two sections.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def bake_svg(svg: str, assertion_json: str, verify_url: str) -> str:
    """Return ``svg`` with the assertion as the first child of its root element.

    Raises:
        BakingError: no root ``<svg>`` element, or the SVG already carries a badge.
    """
    match = _SVG_ROOT.search(svg)
    if match is None:
        raise BakingError("no <svg> root element found")
    if "<openbadges:assertion" in svg:
        raise BakingError("the SVG already carries a baked badge")
    start_tag = match.group(0)
    self_closing = bool(match.group(1))
    if "xmlns:openbadges" not in start_tag:
        head = start_tag[: -2 if self_closing else -1].rstrip()
        start_tag = f'{head} xmlns:openbadges="{SVG_NAMESPACE}"' + ("/>" if self_closing else ">")
    quoted_url = verify_url.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    element = f'<openbadges:assertion verify="{quoted_url}">{_cdata(assertion_json)}</openbadges:assertion>'
    if self_closing:
        replacement = start_tag[:-2] + ">" + element + "</svg>"
    else:
        replacement = start_tag + element
    return svg[: match.start()] + replacement + svg[match.end():]


def unbake_svg(svg: str) -> str | None:
    """Return the assertion baked into ``svg``, or None when it carries none.

    Raises:
        BakingError: ``svg`` is not well-formed XML.
    """
    try:
        root = ElementTree.fromstring(svg)
    except ElementTree.ParseError as exc:
        raise BakingError(f"the SVG is not well-formed: {exc}") from None
    element = root.find(f"{{{SVG_NAMESPACE}}}assertion")
    if element is None:
        return None
    return element.text or ""


# --- default image ------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def default_badge_png(name: str, kind: str, size: int = DEFAULT_IMAGE_SIZE) -> bytes:
    """Draw a round badge with ``name`` on it, coloured by ``kind``; return PNG bytes.

    Used for every badge whose catalog entry names no image.
    """
    ring, fill = KIND_COLORS.get(kind, KIND_COLORS["item"])
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    margin = size // 40
    draw.ellipse((margin, margin, size - margin, size - margin), fill=ring)
    inner = size // 12
    draw.ellipse((inner, inner, size - inner, size - inner), fill=fill)

    lines = textwrap.wrap(name, width=14)[:5] or [name[:14]]
    font = ImageFont.load_default(size=max(12, size // 13))
    line_height = size // 11
    top = size // 2 - line_height * len(lines) // 2
    for index, line in enumerate(lines):
        draw.text((size // 2, top + index * line_height + line_height // 2), line, fill="#ffffff", font=font,
                  anchor="mm", stroke_width=max(1, size // 200), stroke_fill=ring)

    output = io.BytesIO()
    image.save(output, format="PNG", optimize=True)
    return output.getvalue()
