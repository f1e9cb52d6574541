"""One's own images as the uint8 (N, 3, 32, 32) batches the models take: decoding, RGB, resizing.

Any size and any mode PIL reads (RGB, RGBA, grayscale, palette...) become RGB; images that are not
32x32 are resized with antialiasing on the uint8 tensor (``torchvision.transforms.functional.resize``),
so a model prepares them exactly as it prepares the CIFAR-10 images it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from cifar_bench.errors import CifarBenchError, first_line

SIZE = 32
# The formats decoded, by PIL's names: a file is never handed to another plugin whatever its name says (a
# PostScript file named x.png would otherwise reach PIL's EPS plugin, which runs Ghostscript).
READ_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "GIF", "TIFF")
# The most pixels an image may have (read from its header, before decoding): 64 MP, 192 MB as RGB, above
# any camera's photo. PIL alone only warns up to 178 MP, so a 20 KB PNG could decode to gigabytes.
MAX_PIXELS = 64_000_000
# Image.DecompressionBombError is a subclass of Exception raised for absurdly large images.
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def rgb_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image of any mode as uint8 (3, H, W), unresized; palette images with transparency go through RGBA."""
    from torchvision.transforms.functional import pil_to_tensor

    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return pil_to_tensor(image)


def to_32(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) to (N, 3, 32, 32): resized with antialiasing when not that size already."""
    from torchvision.transforms.functional import resize

    if tuple(images.shape[-2:]) == (SIZE, SIZE):
        return images
    return resize(images, [SIZE, SIZE], antialias=True)


def image_extensions() -> set[str]:
    """The file name extensions (lower case, with the dot) of the formats read."""
    return {extension.lower() for extension, name in Image.registered_extensions().items() if name in READ_FORMATS}


def read_image(path: Path) -> torch.Tensor:
    """One image file as uint8 (3, H, W), in one of READ_FORMATS and at most MAX_PIXELS; anything else
    raises CifarBenchError with the reason."""
    try:
        with Image.open(path, formats=READ_FORMATS) as image:
            if image.width * image.height > MAX_PIXELS:
                raise CifarBenchError(
                    f"{image.width}x{image.height} pixels, more than the {MAX_PIXELS:,} read: pass a smaller image"
                )
            image.load()
            return rgb_tensor(image)
    except DECODE_ERRORS as error:
        reason = first_line(error)
        raise CifarBenchError(f"{type(error).__name__}: {reason}") from None


def as_uint8_batch(images: torch.Tensor | Sequence[Image.Image]) -> torch.Tensor:
    """A uint8 tensor (N, 3, H, W) or (3, H, W), or a list of PIL images, as uint8 (N, 3, 32, 32)."""
    if isinstance(images, torch.Tensor):
        batch = images.unsqueeze(0) if images.ndim == 3 else images
        if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[1] != 3:
            raise CifarBenchError(f"expected uint8 images (N, 3, H, W), got {batch.dtype} {tuple(images.shape)}")
        return to_32(batch)
    if not images:
        raise CifarBenchError("no images to predict")
    if not all(isinstance(image, Image.Image) for image in images):
        raise CifarBenchError("expected a uint8 tensor (N, 3, H, W) or a list of PIL images")
    return torch.cat([to_32(rgb_tensor(image).unsqueeze(0)) for image in images])
