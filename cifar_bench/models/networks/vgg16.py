"""torchvision's VGG16 with a 10-way head, seen as one flat sequence of layers so it can be split.

The flat view (13 conv blocks' layers, adaptive pooling, flatten, the classifier) lets a model run
the frozen prefix once and the trainable tail many times; state-dict keys stay torchvision's, so
ImageNet weights and local files load unchanged (a folded fc6 folds the loaded weight).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import VGG16_Weights
from torchvision.models.vgg import cfgs, make_layers

from cifar_bench.errors import CifarBenchError, first_line
from cifar_bench.io import TORCH_LOAD_ERRORS, file_sha256, user_path
from cifar_bench.models.networks.dropout import VectorisedDropout
from cifar_bench.models.networks.init import init_layers
from cifar_bench.models.networks.small_map_conv import small_map_convolutions

WEIGHT_LAYER_NAMES = (
    "conv1_1", "conv1_2",
    "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3",
    "conv5_1", "conv5_2", "conv5_3",
    "fc6", "fc7", "fc8",
)  # fmt: skip
# The layer whose output the feature store keeps: the deepest one frozen in vgg16_last2, last3 and last5 alike.
STORE_TAP = "conv5_1"
# The most bytes a weights file may hold, and its tensors declare: torchvision's whole VGG16 in float32
# (138,357,544 parameters, 553 MB) and its pickle fit under it.
MAX_WEIGHTS_BYTES = 600 * 10**6
ADVICE = "pass a torch.save'd VGG16 state dict"
# The words ``weights`` takes besides a file's path: torchvision's IMAGENET1K_V1 (fc8 excepted: the 10-way head is
# new), only its 13 conv layers (what the offline file vgg16_features_imagenet1k_v1.pth holds: fc6-fc8 random), or
# nothing pretrained.
WEIGHT_WORDS = ("imagenet", "imagenet_conv", "none")
# At 32x32 input the last feature map is 1x1; AdaptiveAvgPool2d((7, 7)) copies it to 7x7 positions for fc6.
FC6_COPIES = 49


class VGG16(nn.Module):
    """VGG16 (13 conv + 3 fully connected weight layers) whose final layer predicts ``num_classes``.

    ``fold_fc6``: build pooling + fc6 (25088 -> 4096) as the equivalent 512 -> 4096 layer, for 32x32
    inputs. At 32x32 the last feature map is 1x1 and the pooling feeds fc6 ``FC6_COPIES`` copies of
    each of the 512 channels, so fc6 sums 49 column blocks applied to the same vector: their sum is the
    same map at 1/49 of the multiply-adds and parameters, and the 102M-weight layer is never built.
    A pretrained fc6 is folded as it loads (``load_vgg16_state``); a random one gets an initialisation
    of its own size, not a sum of 49 random blocks (7x too large). For the same training trajectory
    under SGD, train a pretrained folded weight with ``FC6_COPIES`` times the learning rate and
    1/``FC6_COPIES`` of the weight decay (``VGG16Classifier.parameter_groups``). Larger inputs no
    longer fit a folded fc6 (a shape error).
    """

    def __init__(self, num_classes: int = 10, fold_fc6: bool = False) -> None:
        super().__init__()
        # torchvision's layer layout, so that state-dict keys stay torchvision's (features.N, classifier.N).
        self.features = small_map_convolutions(make_layers(cfgs["D"]))  # conv5_x: 2x2 maps at 32x32
        self.avgpool = nn.Identity() if fold_fc6 else nn.AdaptiveAvgPool2d((7, 7))
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(512 if fold_fc6 else 512 * FC6_COPIES, 4096),
            nn.ReLU(inplace=True),
            VectorisedDropout(0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            VectorisedDropout(0.5),
            nn.Linear(4096, num_classes),
        )
        init_layers(self.layers)

    @property
    def layers(self) -> list[nn.Module]:
        return [*self.features, self.avgpool, self.flatten, *self.classifier]

    @property
    def fc6_folded(self) -> bool:
        return isinstance(self.avgpool, nn.Identity)

    def named_weight_layers(self) -> list[tuple[str, nn.Module]]:
        """(name, layer) of the 16 weight layers in network order: conv1_1 ... fc8."""
        modules = [m for m in self.layers if isinstance(m, (nn.Conv2d, nn.Linear))]
        return list(zip(WEIGHT_LAYER_NAMES, modules))

    def prefix_length(self, frozen_weight_layers: int) -> int:
        """How many flat layers run before the first trained weight layer's input.

        The prefix ends with the activation (and pooling) after the last frozen weight layer; a Dropout
        directly before a trained layer belongs to the tail, so it stays active while training.
        """
        layers = self.layers
        if frozen_weight_layers == 0:
            return 0
        last_frozen = self.named_weight_layers()[frozen_weight_layers - 1][1]
        end = next(i for i, layer in enumerate(layers) if layer is last_frozen) + 1
        while end < len(layers) and isinstance(
            layers[end], (nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Identity, nn.Flatten)
        ):
            end += 1
        return end

    def run(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        for layer in self.layers[start:stop]:
            x = layer(x)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.run(images)


class WeightsOrigin(NamedTuple):
    """Where a VGG16's weights came from: the weight layers loaded pretrained and those left random, and the
    file read, by its name and the SHA-256 of its bytes (None for 'none', or torchvision's cache not found)."""

    pretrained: list[str]
    random: list[str]
    file: str | None = None
    sha256: str | None = None


def _torchvision_weights() -> tuple[dict[str, torch.Tensor], Path]:
    """torchvision's IMAGENET1K_V1 state dict, and the file of torch's cache it was read from."""
    weights = VGG16_Weights.IMAGENET1K_V1
    try:
        state = weights.get_state_dict(progress=False)
    except (OSError, RuntimeError, ValueError) as error:
        raise CifarBenchError(
            f"could not fetch torchvision's VGG16 ImageNet weights ({first_line(error)}): run once with "
            "internet so torch caches them, or pass a local state dict with --model.weights PATH"
        )
    return state, Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def _read_state_dict(source: str) -> tuple[dict[str, torch.Tensor], Path]:
    """The state dict ``source`` names, and the file it was read from."""
    if source in ("imagenet", "imagenet_conv"):
        state, path = _torchvision_weights()
        if source == "imagenet_conv":
            state = {key: tensor for key, tensor in state.items() if key.startswith("features.")}
        return state, path
    path = user_path(source)
    if not path.is_file():
        words = ", ".join(map(repr, WEIGHT_WORDS))
        raise CifarBenchError(f"weights {source!r} are neither a word ({words}) nor an existing file")
    refuse_unbounded(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, OSError, *TORCH_LOAD_ERRORS) as error:
        raise CifarBenchError(f"{path} is not a loadable state dict ({first_line(error)[:200]}): {ADVICE}")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CifarBenchError(f"{path} does not hold a state dict of tensors: {ADVICE}")
    declared = sum(tensor.numel() * tensor.element_size() for tensor in state.values())
    if declared > MAX_WEIGHTS_BYTES:
        raise CifarBenchError(
            f"{path} declares {declared:,} bytes of tensors, over VGG16's {MAX_WEIGHTS_BYTES:,}: {ADVICE}"
        )
    return state, path


def refuse_unbounded(path: Path) -> None:
    """A weights file loads only as what torch.save writes: a zip archive of at most ``MAX_WEIGHTS_BYTES``
    whose members are stored, not compressed, so that what loads is no larger than the file (466 KB of
    deflated zeros loaded as 478 MB of tensors) and, mapped from disk, takes no memory until used. Text
    such as /etc/passwd is refused here (it was a traceback of 93 lines)."""
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise CifarBenchError(f"{path} is {size:,} bytes, more than VGG16's weights ({MAX_WEIGHTS_BYTES:,}): {ADVICE}")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise CifarBenchError(f"{path} is not a loadable state dict ({error}): {ADVICE}")
    if any(member.compress_type != zipfile.ZIP_STORED for member in members):
        raise CifarBenchError(f"{path} holds compressed members, which torch.save never writes: {ADVICE}")


def plain_weight(tensor: torch.Tensor) -> bool:
    """A dense floating-point tensor in memory, as a layer's weight is: not meta (no data), sparse, quantized
    or complex, nor integers or booleans that load_state_dict would silently cast."""
    return (
        tensor.layout == torch.strided
        and not tensor.is_meta
        and not tensor.is_quantized
        and tensor.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    )


def load_vgg16_weights(net: VGG16, source: str) -> WeightsOrigin:
    """Load one of ``WEIGHT_WORDS`` or a local (full or partial) state dict; say which layers are pretrained and
    which random, and the file read by its name and digest (computed here, once, as it is loaded)."""
    if source == "none":
        return WeightsOrigin([], [name for name, _ in net.named_weight_layers()])
    state, path = _read_state_dict(source)
    pretrained, random = load_vgg16_state(net, state, source)
    return WeightsOrigin(pretrained, random, path.name, file_sha256(path) if path.is_file() else None)


def folded_fc6_weight(weight: torch.Tensor) -> torch.Tensor:
    """An unfolded fc6 weight (4096, 512 x 49) as the folded layer's (4096, 512): the sum of its 49 column blocks."""
    return weight.view(weight.shape[0], -1, FC6_COPIES).sum(-1)


def load_vgg16_state(net: VGG16, state: dict[str, torch.Tensor], source: str) -> tuple[list[str], list[str]]:
    """Load a (full or partial) torchvision VGG16 state dict; return (pretrained, random) layer names.

    An unfolded fc6 is folded into a folded network as it loads. An ImageNet fc8 (1000 classes) is
    skipped, since the 10-way head replaces it. Keys VGG16 does not have, or tensors of another shape,
    mean the state dict is for another architecture: a clear error naming ``source``.
    """
    own = net.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise CifarBenchError(
            f"weights {source} are not a torchvision VGG16 state dict (unexpected keys such as {', '.join(unknown[:3])})"
        )
    odd = next(((key, tensor) for key, tensor in state.items() if not plain_weight(tensor)), None)
    if odd is not None:
        key, tensor = odd
        raise CifarBenchError(
            f"weights {source}: {key} is a {tensor.dtype} tensor of layout {tensor.layout} on {tensor.device}, "
            f"not plain floating-point weights: {ADVICE}"
        )
    fc6, head = "classifier.0.weight", "classifier.6."
    if net.fc6_folded and fc6 in state and state[fc6].shape[1:] == (512 * FC6_COPIES,):
        state = {**state, fc6: folded_fc6_weight(state[fc6])}
    loadable = {}
    for key, tensor in state.items():
        if tensor.shape == own[key].shape:
            loadable[key] = tensor
        elif not key.startswith(head):
            raise CifarBenchError(
                f"weights {source}: {key} has shape {tuple(tensor.shape)}, VGG16 needs {tuple(own[key].shape)}; "
                "the file is for another architecture"
            )
    net.load_state_dict(loadable, strict=False)
    keys_of = {id(module): prefix for prefix, module in net.named_modules()}
    pretrained, random = [], []
    for name, module in net.named_weight_layers():
        (pretrained if f"{keys_of[id(module)]}.weight" in loadable else random).append(name)
    return pretrained, random
