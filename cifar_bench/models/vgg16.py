"""ImageNet-pretrained VGG16 with only its last N weight layers trained (Parts 6.1-6.3)."""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt, restricted_number_type
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from cifar_bench.arguments import Seed
from cifar_bench.data.augment import PROFILES
from cifar_bench.errors import CifarBenchError
from cifar_bench.models.base import CifarClassifier
from cifar_bench.models.networks.vgg16 import FC6_COPIES, STORE_TAP, VGG16, WEIGHT_LAYER_NAMES, load_vgg16_weights

# Options of earlier versions that no longer change anything (the in-run cache the feature store replaced).
RETIRED_OPTIONS = ("cache_features", "cache_views")

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

    ``feature_store``: a folder of frozen-feature stores (``cifar_bench.features.store``). The frozen
    conv1_1 ... conv5_1 give the same output for the same input, so a store keeps it, computed once, for
    every training image in ``store_views`` augmented views (the study's random flip and rotation, drawn
    once per view from ``store_seed``) and for the plain training and test images. Training draws one
    stored view per image each epoch and runs only the layers after conv5_1; validation reads the plain
    view. The price: an image is seen in ``store_views`` augmentations instead of a fresh one each epoch,
    and a tail trained long enough memorises them; the last ``fresh_epochs`` epochs therefore run the
    whole network on a fresh augmentation each epoch, as a run without the store does throughout.
    The store is built on the first fit that needs it (a progress bar shows it) and shared by
    vgg16_last2, last3 and last5 and every seed; test, evaluate and predict always run the whole network.

    ``fold_fc6``: at 32x32 the pooling before fc6 only copies a 1x1 map 49 times, so fc6 is built as
    an equivalent 512 -> 4096 layer (103M -> 2M weights) and pretrained fc6 weights are folded as they
    load. When a pretrained fc6 is trained, its folded weight gets 49x the learning rate and 1/49 of
    the weight decay: with SGD or AdamW (or Adam without weight decay) that follows the unfolded
    network's trajectory exactly. A random fc6 (conv-only weights) is initialised folded and trained as is.

    ``pretrained_lr_scale``: trained layers that start from pretrained weights learn at this fraction
    of the learning rate, so a random head's large early gradients do not wreck them.

    Args:
        trainable_layers: how many of the 16 weight layers, counted from the output, are trained.
        weights: 'imagenet' (torchvision's IMAGENET1K_V1 through its weights API: every layer but the new
            fc8), 'imagenet_conv' (only its 13 conv layers: fc6-fc8 start random, as with the offline
            vgg16_features_imagenet1k_v1.pth), 'none', or a path to a local state dict, full or partial.
        feature_store: folder of the frozen-feature stores to train from; None runs the whole network every step.
        store_views: augmented views of each training image the store keeps.
        store_dtype: how stored features are kept: float16 (half the disk and reads) or float32 (exact).
        store_seed: seed of the stored views' draws (the same store serves every run seed).
        fresh_epochs: how many of the last epochs train the whole network on freshly augmented images
            instead of the store (validation still reads the store).
        fold_fc6: fold pooling and fc6 into the equivalent 512 -> 4096 layer.
        channels_last: keep the convolution weights NHWC, the faster layout on CPU (oneDNN) and GPU.
        pretrained_lr_scale: learning-rate factor for trained layers loaded with pretrained weights.
    """

    transform_profile = PROFILES["imagenet_augmented"]
    loads_pretrained_weights = True

    def __init__(
        self,
        trainable_layers: WeightLayerCount = 2,
        weights: str = "imagenet",
        feature_store: Optional[str] = None,
        store_views: PositiveInt = 8,
        store_dtype: Literal["float16", "float32"] = "float16",
        store_seed: Seed = 0,
        fresh_epochs: NonNegativeInt = 0,
        fold_fc6: bool = True,
        channels_last: bool = True,
        pretrained_lr_scale: PositiveFloat = 1.0,
        **kwargs,
    ) -> None:
        for retired in RETIRED_OPTIONS:  # an older checkpoint's hyperparameters, as Lightning passes them on a load
            kwargs.pop(retired, None)
        super().__init__(**kwargs)
        self.net = VGG16(fold_fc6=fold_fc6)
        self.weights_origin = load_vgg16_weights(self.net, weights)
        self.pretrained_layers, self.random_layers = self.weights_origin.pretrained, self.weights_origin.random
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
        self.store_tap_end = self.net.prefix_length(WEIGHT_LAYER_NAMES.index(STORE_TAP) + 1)
        if feature_store is not None and self.prefix_end < self.store_tap_end:
            raise CifarBenchError(
                f"feature_store keeps {STORE_TAP}'s output, which trainable_layers={trainable_layers} trains: "
                f"use trainable_layers <= {len(WEIGHT_LAYER_NAMES) - WEIGHT_LAYER_NAMES.index(STORE_TAP) - 1}"
            )
        # Per stage ('train': (views, N, ...), 'val': (N, ...)), stored features by source position.
        self.stored_features: dict[str, np.ndarray] = {}

    def trained_layers(self) -> list[str]:
        return [name for name, layer in self.net.named_weight_layers() if layer.weight.requires_grad]

    def weights_record(self) -> dict:
        """The weights file (its name and SHA-256, never its folder) and which weight layers started pretrained,
        which random, and which are trained: what RecordEnvironment keeps in environment.json."""
        origin = self.weights_origin
        return {
            "file": origin.file,
            "sha256": origin.sha256,
            "pretrained_layers": list(origin.pretrained),
            "random_layers": list(origin.random),
            "trained_layers": self.trained_layers(),
        }

    def study_parameter_counts(self) -> tuple[int, int]:
        """As the study counts them: torchvision's VGG16 with a 10-way fc8, whose fc6 takes the 25088 inputs the
        folded one sums 49 to (134,301,514 in all); a folded fc6's 48 missing copies added back."""
        trainable, total = self.parameter_counts()
        if not self.net.fc6_folded:
            return trainable, total
        fc6 = self.net.classifier[0].weight
        missing = (FC6_COPIES - 1) * fc6.numel()
        return trainable + (missing if fc6.requires_grad else 0), total + missing

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

    def use_feature_store(self, features: dict[str, np.ndarray]) -> None:
        """Train and validate from these stored features by stage (an empty dict: the whole network again)."""
        self.stored_features = features

    def stage_features(self, stage: str) -> np.ndarray | None:
        """The stored features this stage reads now: none in the last ``fresh_epochs`` epochs of training."""
        trainer, fresh = self._trainer, self.hparams.fresh_epochs
        if stage == "train" and fresh and trainer is not None and (trainer.max_epochs or -1) >= 0:
            if self.current_epoch >= trainer.max_epochs - fresh:
                return None
        return self.stored_features.get(stage)

    def network_inputs(self, images: torch.Tensor, stage: str) -> torch.Tensor:
        """A stage fed from the store needs no image prepared: its batches are looked up by position."""
        return images if self.stage_features(stage) is not None else super().network_inputs(images, stage)

    def logits(self, batch, stage: str) -> torch.Tensor:
        features = self.stage_features(stage)
        if features is None:
            return self(batch[0])
        positions = batch[2].cpu()
        if stage == "train":  # one stored view per image, drawn anew each time it is seen
            rows = features[torch.randint(0, features.shape[0], positions.shape).numpy(), positions.numpy()]
        else:
            rows = features[positions.numpy()]
        inputs = torch.from_numpy(rows).to(self.device, torch.float32)
        return self.net.run(inputs.contiguous(memory_format=torch.channels_last), self.store_tap_end)
