"""ImageNet-pretrained VGG16 with only its last N weight layers trained (Parts 6.1-6.3)."""

from __future__ import annotations

import torch
from jsonargparse.typing import PositiveFloat, PositiveInt, restricted_number_type
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from cifar_bench.data.augment import PROFILES
from cifar_bench.errors import CifarBenchError
from cifar_bench.models.base import CifarClassifier
from cifar_bench.networks.vgg16 import FC6_COPIES, VGG16, WEIGHT_LAYER_NAMES, load_vgg16_weights

WeightLayerCount = restricted_number_type(
    f"IntFrom1To{len(WEIGHT_LAYER_NAMES)}",
    int,
    [(">=", 1), ("<=", len(WEIGHT_LAYER_NAMES))],
    docstring=f"int restricted to be ≥1 and ≤{len(WEIGHT_LAYER_NAMES)}",
)


class VGG16Classifier(CifarClassifier):
    """VGG16 at CIFAR's 32x32 resolution, a 10-way fc8, and all but the last ``trainable_layers`` frozen.

    Frozen layers have ``requires_grad=False`` and are left out of the optimizer, so they get neither
    gradients nor optimizer state. The frozen prefix is kept in eval mode whatever mode the model is
    in; it holds no Dropout or BatchNorm in practice, because the Dropout before a trained fc layer is
    counted as part of the trained tail and stays active in training.

    ``cache_features``: the frozen convolutions give the same activations for the same input, so they
    are kept, by the image's index in its split, and later epochs run only the rest. Training keeps
    ``cache_views`` views of each image, each one the image as augmented (random flip and rotation)
    when it was computed: epoch e < cache_views computes view e of every image from the batch as
    augmented then, later epochs draw one kept view per image (a view still missing, e.g. after a
    resume, is computed from the batch in hand). The price: an image is seen in ``cache_views``
    augmentations instead of a fresh one each epoch. Validation keeps its one unaugmented view.
    Frozen fully connected layers still run every step (they are cheap); test and predict always run
    the whole network.

    ``fold_fc6``: at 32x32 the pooling before fc6 only copies a 1x1 map 49 times, so fc6 is built as
    an equivalent 512 -> 4096 layer (103M -> 2M weights) and pretrained fc6 weights are folded as they
    load. When a pretrained fc6 is trained, its folded weight gets 49x the learning rate and 1/49 of
    the weight decay: with SGD or AdamW (or Adam without weight decay) that follows the unfolded
    network's trajectory exactly. A random fc6 (conv-only weights) is initialised folded and trained as is.

    ``pretrained_lr_scale``: trained layers that start from pretrained weights learn at this fraction
    of the learning rate, so a random head's large early gradients do not wreck them.

    Args:
        trainable_layers: how many of the 16 weight layers, counted from the output, are trained.
        weights: 'imagenet' (torchvision's weights API), 'none', or a path to a local state dict,
            full or partial (e.g. the 13 conv layers only).
        cache_features: run the frozen convolutions once per image and view instead of every step.
        cache_views: augmented views of each training image the cache keeps.
        fold_fc6: fold pooling and fc6 into the equivalent 512 -> 4096 layer.
        channels_last: keep the convolution weights NHWC, the faster layout on CPU (oneDNN) and GPU.
        pretrained_lr_scale: learning-rate factor for trained layers loaded with pretrained weights.
    """

    transform_profile = PROFILES["imagenet_augmented"]

    def __init__(
        self,
        trainable_layers: WeightLayerCount = 2,
        weights: str = "imagenet",
        cache_features: bool = False,
        cache_views: PositiveInt = 2,
        fold_fc6: bool = True,
        channels_last: bool = True,
        pretrained_lr_scale: PositiveFloat = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.net = VGG16(fold_fc6=fold_fc6)
        self.pretrained_layers, self.random_layers = load_vgg16_weights(self.net, weights)
        if weights != "none":  # evaluate and predict build with "none" and then load a checkpoint: nothing to report
            rank_zero_info(
                f"VGG16 weights from {weights}: pretrained {', '.join(self.pretrained_layers) or 'none'}; "
                f"random init {', '.join(self.random_layers) or 'none'}"
            )
        self.use_channels_last(channels_last)
        frozen = len(WEIGHT_LAYER_NAMES) - trainable_layers
        for _, layer in self.net.named_weight_layers()[:frozen]:
            layer.requires_grad_(False)
        self.prefix_end = self.net.prefix_length(frozen)
        self.cache_end = min(self.prefix_end, len(self.net.features))
        if cache_features and self.cache_end == 0:
            raise CifarBenchError("cache_features needs at least one frozen conv layer: use trainable_layers <= 15")
        self.feature_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def parameter_groups(self) -> list[dict]:
        """Trained layers in up to three groups: random ones at the learning rate, pretrained ones at
        ``pretrained_lr_scale`` of it, and a pretrained folded fc6 additionally at lr x49, weight decay /49."""
        hp = self.hparams
        names = dict(self.net.named_weight_layers())
        pretrained = {id(p) for name in self.pretrained_layers for p in names[name].parameters()}
        folded = self.net.classifier[0].weight if self.net.fc6_folded and "fc6" in self.pretrained_layers else None
        trained = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in trained if id(p) not in pretrained]},
            {
                "params": [p for p in trained if id(p) in pretrained and p is not folded],
                "lr_scale": hp.pretrained_lr_scale,
            },
        ]
        if folded is not None and folded.requires_grad:
            if hp.optimizer == "adam" and hp.weight_decay > 0:
                rank_zero_warn(
                    "Adam with weight decay on a folded fc6 only approximates the unfolded network; AdamW or SGD match it"
                )
            groups.append(
                {
                    "params": [folded],
                    "lr_scale": hp.pretrained_lr_scale * FC6_COPIES,
                    "weight_decay": hp.weight_decay / FC6_COPIES,
                }
            )
        return [group for group in groups if group["params"]]

    def train(self, mode: bool = True):
        super().train(mode)
        for layer in self.net.layers[: self.prefix_end]:
            layer.train(False)
        return self

    def on_fit_end(self) -> None:
        self.feature_cache = {}

    def _split_cache(
        self, stage: str, views: int, needed: int, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's (views, images, ...) activations and (views, images) filled flags, grown to ``needed`` images."""
        cache, filled = self.feature_cache.get(stage, (None, None))
        if cache is not None and filled.shape[1] >= needed:
            return cache, filled
        probe = self.net.run(inputs[:1], 0, self.cache_end)
        size = max(needed, 2 * filled.shape[1] if filled is not None else needed)
        grown = torch.zeros((views, size, *probe.shape[1:]), dtype=probe.dtype, device=inputs.device)
        grown_filled = torch.zeros((views, size), dtype=torch.bool, device=inputs.device)
        if cache is not None:
            grown[:, : cache.shape[1]], grown_filled[:, : filled.shape[1]] = cache, filled
        self.feature_cache[stage] = (grown, grown_filled)
        return grown, grown_filled

    @torch.no_grad()
    def cached_features(self, inputs: torch.Tensor, indices: torch.Tensor, stage: str) -> torch.Tensor:
        """The frozen activations of this batch's images: one kept view each, computing the views not kept yet."""
        views = self.hparams.cache_views if stage == "train" else 1
        cache, filled = self._split_cache(stage, views, int(indices.max()) + 1, inputs)
        if views == 1 or self.current_epoch < views:
            view = torch.full_like(indices, min(self.current_epoch, views - 1))
        else:
            view = torch.randint(0, views, indices.shape, device=indices.device)
        missing = ~filled[view, indices]
        if missing.any():
            cache[view[missing], indices[missing]] = self.net.run(inputs[missing], 0, self.cache_end).to(cache.dtype)
            filled[view[missing], indices[missing]] = True
        return cache[view, indices]

    def logits(self, batch, stage: str) -> torch.Tensor:
        if not (self.hparams.cache_features and stage in ("train", "val")):
            return self(batch[0])
        inputs, _, indices = batch
        return self.net.run(self.cached_features(inputs, indices, stage), self.cache_end)
