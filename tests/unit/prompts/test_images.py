"""Synthetic images: a size parsed or refused in one line; equal keys equal bytes, shared images the same
for every request and distinct ones never repeated; images before the text in the message."""

from __future__ import annotations

import base64

import pytest

from prompts.images import ImageSet, image_url, parse_size, with_images


def test_a_size_is_parsed_or_refused_in_one_line():
    assert parse_size("512x384") == (512, 384) and parse_size(" 64 X 48 ") == (64, 48)
    for bad in ("0x10", "512", "axb", "9000x10", ""):
        with pytest.raises(ValueError, match=r"^--image-size takes WIDTHxHEIGHT"):
            parse_size(bad)


@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG"), ("jpeg", b"\xff\xd8\xff")])
def test_an_image_is_a_data_url_of_its_format_and_the_same_for_the_same_key(fmt, magic):
    url = image_url((7, 1), (32, 24), fmt)
    assert url.startswith(f"data:image/{fmt};base64,")
    assert base64.b64decode(url.split(",", 1)[1]).startswith(magic)
    assert image_url((7, 1), (32, 24), fmt) == url != image_url((7, 2), (32, 24), fmt)


def test_shared_images_repeat_and_distinct_ones_do_not():
    shared = ImageSet(2, (16, 16), "jpeg", share=True, seed=3)
    assert shared.next() == shared.next() and len(set(shared.next())) == 2
    distinct = ImageSet(2, (16, 16), "jpeg", share=False, seed=3)
    # made ahead, taken first, then made when none is ready: never one twice
    distinct.fill(3)
    assert distinct.ready == 3
    seen = [url for _ in range(5) for url in distinct.next()]
    assert len(set(seen)) == 10 and distinct.ready == 0
    parts = with_images("Describe them.", shared.next())
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"] and parts[-1]["text"] == "Describe them."
