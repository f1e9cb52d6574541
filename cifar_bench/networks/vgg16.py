"""torchvision's VGG16 with a 10-way head, seen as one flat sequence of layers so it can be split.

The flat view (13 conv blocks' layers, adaptive pooling, flatten, the classifier) lets a model run
the frozen prefix once and the trainable tail many times; state-dict keys stay torchvision's, so
ImageNet weights and local files load unchanged (fold fc6 only after loading them).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn
from torchvision.models import VGG16_Weights, vgg16

from cifar_bench.errors import CifarBenchError
from cifar_bench.networks.init import init_layer, init_layers

WEIGHT_LAYER_NAMES = (
    "conv1_1", "conv1_2",
    "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3",
    "conv5_1", "conv5_2", "conv5_3",
    "fc6", "fc7", "fc8",
)  # fmt: skip
# At 32x32 input the last feature map is 1x1; AdaptiveAvgPool2d((7, 7)) copies it to 7x7 positions for fc6.
FC6_COPIES = 49


class VGG16(nn.Module):
    """VGG16 (13 conv + 3 fully connected weight layers) whose final layer predicts ``num_classes``."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        base = vgg16(weights=None)
        base.classifier[6] = nn.Linear(base.classifier[6].in_features, num_classes)
        self.features, self.avgpool, self.classifier = base.features, base.avgpool, base.classifier
        self.flatten = nn.Flatten()
        init_layers(self.layers)

    @property
    def layers(self) -> list[nn.Module]:
        return [*self.features, self.avgpool, self.flatten, *self.classifier]

    @property
    def fc6_folded(self) -> bool:
        return isinstance(self.avgpool, nn.Identity)

    def fold_fc6(self, pretrained: bool = True) -> None:
        """Replace pooling + fc6 (25088 -> 4096) by an equivalent 512 -> 4096 fc6, for 32x32 inputs.

        At 32x32 the pooling feeds fc6 49 copies of each of the 512 channels, so fc6 sums 49 column
        blocks applied to the same vector: their sum is the same map at 1/49 of the multiply-adds and
        parameters. For the same training trajectory under SGD, train a pretrained folded weight with
        ``FC6_COPIES`` times the learning rate and 1/``FC6_COPIES`` of the weight decay (see
        ``VGG16Classifier.parameter_groups``). A random fc6 (``pretrained`` False) has no trajectory to
        keep: the folded layer gets a fresh initialisation of its own size instead of a sum of 49
        random blocks (7x too large). Larger inputs no longer fit fc6 (a shape error).
        """
        if self.fc6_folded:
            return
        fc6 = self.classifier[0]
        channels = fc6.in_features // FC6_COPIES
        folded = nn.Linear(channels, fc6.out_features, device=fc6.weight.device, dtype=fc6.weight.dtype)
        if pretrained:
            with torch.no_grad():
                folded.weight.copy_(fc6.weight.view(fc6.out_features, channels, FC6_COPIES).sum(-1))
                folded.bias.copy_(fc6.bias)
        else:
            init_layer(folded)
        folded.requires_grad_(fc6.weight.requires_grad)
        self.classifier[0] = folded
        self.avgpool = nn.Identity()

    def weight_layers(self) -> list[tuple[str, nn.Module]]:
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
        last_frozen = self.weight_layers()[frozen_weight_layers - 1][1]
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


def _read_state_dict(source: str) -> dict[str, torch.Tensor]:
    if source == "imagenet":
        try:
            return VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except (OSError, RuntimeError, ValueError) as error:
            raise CifarBenchError(
                f"could not fetch torchvision's VGG16 ImageNet weights ({str(error).splitlines()[0]}): run once with "
                "internet so torch caches them, or pass a local state dict with --model.weights PATH"
            )
    path = Path(source).expanduser()
    if not path.is_file():
        raise CifarBenchError(f"weights {source!r} are neither 'imagenet', 'none' nor an existing file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        raise CifarBenchError(
            f"{path} is not a loadable state dict ({str(error).splitlines()[0][:200]}): pass a torch.save'd VGG16 state dict"
        )
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CifarBenchError(f"{path} does not hold a state dict of tensors: pass a torch.save'd VGG16 state dict")
    return state


def load_vgg16_weights(net: VGG16, source: str) -> tuple[list[str], list[str]]:
    """Load 'imagenet', 'none' or a local (full or partial) state dict; return (pretrained, random) layer names.

    An ImageNet fc8 (1000 classes) is skipped, since the 10-way head replaces it. Keys VGG16 does not
    have, or tensors of another shape, mean the file is for another architecture: a clear error.
    """
    if source == "none":
        return [], [name for name, _ in net.weight_layers()]
    state = _read_state_dict(source)
    own = net.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise CifarBenchError(
            f"weights {source} are not a torchvision VGG16 state dict (unexpected keys such as {', '.join(unknown[:3])})"
        )
    head = "classifier.6."
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
    for name, module in net.weight_layers():
        (pretrained if f"{keys_of[id(module)]}.weight" in loadable else random).append(name)
    return pretrained, random
