"""Synthetic images for multimodal prompts (``--images N --image-size WxH --image-format png|jpeg``): each a
smooth colour field with a pattern drawn from its key, encoded as a ``data:`` URL. Equal keys give equal
bytes, so a shared image (``--image-share``: the same N for every request) is the same image to the server's
multimodal cache, and distinct keys give distinct images. No Locust."""

from __future__ import annotations

import base64
import io
import itertools
import mimetypes
import os
import re
from collections import deque

import numpy as np

FORMATS = ("png", "jpeg")
SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """``512x512`` -> (512, 512); ValueError with one line."""
    found = SIZE.match(text or "")
    if not found or not (0 < int(found.group(1)) <= 8192 and 0 < int(found.group(2)) <= 8192):
        raise ValueError(f"--image-size takes WIDTHxHEIGHT, each 1 to 8192 pixels (e.g. 512x512), got {text!r}")
    return int(found.group(1)), int(found.group(2))


def image_url(key: tuple[int, ...], size: tuple[int, int], fmt: str) -> str:
    """The image for ``key`` as a data URL."""
    # Pillow comes with matplotlib; imported when images are asked for
    from PIL import Image

    width, height = size
    rng = np.random.default_rng(list(key))
    y, x = np.mgrid[0:height, 0:width]
    channels = [
        (np.sin(x / (3 + 40 * rng.random()) + 6 * rng.random()) * np.cos(y / (3 + 40 * rng.random())) * 127 + 128)
        for _ in range(3)
    ]
    pixels = np.stack(channels, axis=-1).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG" if fmt == "png" else "JPEG", quality=90, compress_level=1)
    return f"data:image/{fmt};base64," + base64.b64encode(out.getvalue()).decode("ascii")


class ImageSet:
    """The images of each request: the same ``count`` for all (``share``), or ``count`` new ones each.

    Distinct images are made ahead with ``fill`` (about 25 ms per 512x512 jpeg, so not on a request's
    path); ``next`` makes one request's now only when none is ready. ``fill`` may run in another thread.
    """

    def __init__(self, count: int, size: tuple[int, int], fmt: str, share: bool, seed: int) -> None:
        self.count, self.size, self.fmt, self.share, self.seed = count, size, fmt, share, seed
        self._shared = [image_url((seed, 0, i), size, fmt) for i in range(count)] if share else []
        self._next = itertools.count()
        # distinct images stay distinct across processes and workers
        self._process = os.getpid()
        self._ready: deque[list[str]] = deque()

    def _make(self) -> list[str]:
        n = next(self._next)
        return [image_url((self.seed, 1, self._process, n, i), self.size, self.fmt) for i in range(self.count)]

    @property
    def ready(self) -> int:
        """Requests' images made ahead and not yet taken."""
        return len(self._ready)

    def fill(self, n: int) -> None:
        """Make images ahead until ``n`` requests' are ready."""
        while not self.share and len(self._ready) < n:
            self._ready.append(self._make())

    def next(self) -> list[str]:
        """The next request's images (data URLs)."""
        if self.share:
            return self._shared
        try:
            return self._ready.popleft()
        except IndexError:
            return self._make()


URL_SCHEMES = ("http://", "https://", "data:")


def image_ref(ref: str, folder: str) -> str:
    """A dataset's image as the request carries it: a URL as it is (the server fetches it), a file (its path
    relative to ``folder``) read and encoded as a data: URL. ValueError with one line for a file not there."""
    if ref.startswith(URL_SCHEMES):
        return ref
    path = os.path.join(folder, os.path.expanduser(ref))
    kind = mimetypes.guess_type(path)[0] or ""
    if not kind.startswith("image/"):
        raise ValueError(f"image {ref!r} is neither a URL (http, https, data:) nor an image file by its name")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"image {ref!r}: {exc.strerror or exc}") from None
    return f"data:{kind};base64," + base64.b64encode(data).decode("ascii")


def with_images(content: str, urls: list[str]) -> list[dict[str, object]]:
    """A user message's content parts: the images first, then the text (so shared images are a shared prefix)."""
    parts: list[dict[str, object]] = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return [*parts, {"type": "text", "text": content}]
