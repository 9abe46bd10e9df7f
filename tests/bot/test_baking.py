"""Baking badges into PNG and SVG images, reading them back, and the drawn default image."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image, PngImagePlugin

from bot import baking

ASSERTION = json.dumps({
    "@context": "https://w3id.org/openbadges/v2",
    "type": "Assertion",
    "id": "http://127.0.0.1:8080/ob/assertions/1b4e28ba-2fa1-41d2-883f-0016d3cca427",
    "evidence": [{"narrative": "Café ✓ and a CDATA end ]]> inside"}],
}, ensure_ascii=False)

SVG = ('<?xml version="1.0"?>\n'
       '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>')


@pytest.fixture
def png() -> bytes:
    return baking.default_badge_png("Test badge", "item", 64)


def itxt_chunks(data: bytes) -> list[tuple[str, bool, str]]:
    return [baking.parse_itxt(body) for kind, body in baking.png_chunks(data) if kind == b"iTXt"]


def test_png_bake_unbake_round_trip(png):
    baked = baking.bake_png(png, {baking.OB2_KEYWORD: ASSERTION})

    assert baking.unbake_png(baked) == ASSERTION


def test_png_chunk_is_uncompressed_itxt(png):
    baked = baking.bake_png(png, {baking.OB2_KEYWORD: ASSERTION})

    assert itxt_chunks(baked) == [("openbadges", False, ASSERTION)]


def test_png_bake_keeps_the_picture(png):
    baked = baking.bake_png(png, {baking.OB2_KEYWORD: ASSERTION})

    with Image.open(io.BytesIO(png)) as before, Image.open(io.BytesIO(baked)) as after:
        assert after.size == before.size
        assert after.mode == before.mode
        assert after.tobytes() == before.tobytes()


def test_png_bake_both_versions(png):
    baked = baking.bake_png(png, {baking.OB2_KEYWORD: ASSERTION, baking.OB3_KEYWORD: "header.payload.signature"})

    assert baking.unbake_png(baked) == ASSERTION
    assert baking.unbake_png(baked, baking.OB3_KEYWORD) == "header.payload.signature"


def test_png_rebake_replaces_badge(png):
    first = baking.bake_png(png, {baking.OB2_KEYWORD: ASSERTION})

    second = baking.bake_png(first, {baking.OB2_KEYWORD: '{"id": "other"}'})

    assert [keyword for keyword, _, _ in itxt_chunks(second)] == ["openbadges"]
    assert baking.unbake_png(second) == '{"id": "other"}'


def test_png_bake_rejects_other_formats():
    with pytest.raises(baking.BakingError, match="not a PNG"):
        baking.bake_png(b"GIF89a....", {baking.OB2_KEYWORD: ASSERTION})


def test_unbake_png_without_badge(png):
    assert baking.unbake_png(png) is None


def test_unbake_png_reads_compressed_itxt(png):
    info = PngImagePlugin.PngInfo()
    info.add_itxt(baking.OB2_KEYWORD, ASSERTION, zip=True)
    output = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        image.save(output, format="PNG", pnginfo=info)

    assert itxt_chunks(output.getvalue())[0][1] is True
    assert baking.unbake_png(output.getvalue()) == ASSERTION


def test_unbake_png_rejects_bad_crc(png):
    baked = bytearray(baking.bake_png(png, {baking.OB2_KEYWORD: ASSERTION}))
    position = bytes(baked).index(b"openbadges")
    baked[position] ^= 0x20

    with pytest.raises(baking.BakingError, match="CRC"):
        baking.unbake_png(bytes(baked))


def test_unbake_png_rejects_truncated_file(png):
    baked = baking.bake_png(png, {baking.OB2_KEYWORD: ASSERTION})

    cut = baked.index(b"openbadges") + 20

    with pytest.raises(baking.BakingError, match="truncated"):
        baking.unbake_png(baked[:cut])


def test_svg_bake_unbake_round_trip():
    baked = baking.bake_svg(SVG, ASSERTION, "http://127.0.0.1:8080/ob/assertions/x?a=1&b=2")

    assert baking.unbake_svg(baked) == ASSERTION
    assert 'xmlns:openbadges="http://openbadges.org"' in baked
    assert 'verify="http://127.0.0.1:8080/ob/assertions/x?a=1&amp;b=2"' in baked
    assert baked.index("<openbadges:assertion") < baked.index("<rect")


def test_svg_bake_self_closing_root():
    baked = baking.bake_svg('<svg xmlns="http://www.w3.org/2000/svg"/>', ASSERTION, "http://127.0.0.1/a")

    assert baking.unbake_svg(baked) == ASSERTION
    assert baked.endswith("</svg>")


def test_svg_bake_rejects_baked_svg():
    baked = baking.bake_svg(SVG, ASSERTION, "http://127.0.0.1/a")

    with pytest.raises(baking.BakingError, match="already"):
        baking.bake_svg(baked, ASSERTION, "http://127.0.0.1/a")


def test_svg_bake_rejects_missing_root():
    with pytest.raises(baking.BakingError, match="no <svg>"):
        baking.bake_svg("<html></html>", ASSERTION, "http://127.0.0.1/a")


def test_unbake_svg_without_badge():
    assert baking.unbake_svg(SVG) is None


def test_unbake_svg_rejects_malformed_xml():
    with pytest.raises(baking.BakingError, match="not well-formed"):
        baking.unbake_svg("<svg><unclosed></svg>")


@pytest.mark.parametrize("kind", ["item", "level", "skill", "macro", "unknown"])
def test_default_image_is_square_png(kind):
    data = baking.default_badge_png("Career Prepared Level 1 - Introduction and Foundation", kind)

    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.size == (baking.DEFAULT_IMAGE_SIZE, baking.DEFAULT_IMAGE_SIZE)
