"""Each model as its configs/<name>.yaml builds it: parameter counts worked out by hand, and the
input each network is given (its transform profile)."""

from __future__ import annotations

import pytest
import torch
import yaml
from conftest import CONFIGS

import cifar_bench.models
from cifar_bench.configs import CONFIG_DIR, resolve_config_argument

CONV5 = 512 * 512 * 9 + 512  # one of conv5_2, conv5_3
FC6_FOLDED, FC7, FC8 = 512 * 4096 + 4096, 4096 * 4096 + 4096, 4096 * 10 + 10
VGG16_TOTAL = 14_714_688 + FC6_FOLDED + FC7 + FC8  # torchvision's 13 convolutions, then the three linear layers
CNN_CONVS = [(3, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128)]
CNN_WEIGHTS = (
    sum(9 * c_in * c_out for c_in, c_out in CNN_CONVS) + (2048 * 512 + 512) + (512 * 256 + 256) + (256 * 10 + 10)
)
CNN_CHANNELS = sum(
    c_out for _, c_out in CNN_CONVS
)  # conv biases without BatchNorm; with it, BatchNorm's weight and bias

# model: (trainable, total)
PARAMETERS = {
    "mlp": (1_707_274, 1_707_274),
    "cnn": (CNN_WEIGHTS + CNN_CHANNELS, CNN_WEIGHTS + CNN_CHANNELS),
    "cnn_bn_do": (CNN_WEIGHTS + 2 * CNN_CHANNELS, CNN_WEIGHTS + 2 * CNN_CHANNELS),
    "vgg16_last2": (FC7 + FC8, VGG16_TOTAL),
    "vgg16_last3": (FC6_FOLDED + FC7 + FC8, VGG16_TOTAL),
    "vgg16_last5": (2 * CONV5 + FC6_FOLDED + FC7 + FC8, VGG16_TOTAL),
}
PROFILES = {
    "mlp": "plain",
    "cnn": "cifar_augmented",
    "cnn_bn_do": "cifar_augmented",
    "vgg16_last2": "imagenet_augmented",
    "vgg16_last3": "imagenet_augmented",
    "vgg16_last5": "imagenet_augmented",
}


def configured(model: str, **overrides) -> cifar_bench.models.CifarClassifier:
    """The model as its config builds it (VGG16 without weights), shapes only: no memory, no time."""
    config = yaml.safe_load((CONFIGS / f"{model}.yaml").read_text())["model"]
    cls = getattr(cifar_bench.models, config["class_path"].rsplit(".", 1)[1])
    init_args = {
        **config.get("init_args", {}),
        **({"weights": "none"} if model.startswith("vgg16") else {}),
        **overrides,
    }
    with torch.device("meta"):
        return cls(**init_args)


def test_every_config_is_in_the_tables():
    assert (
        sorted(PARAMETERS)
        == sorted(PROFILES)
        == sorted(path.stem for path in CONFIGS.glob("*.yaml") if path.stem != "base")
    )


@pytest.mark.parametrize("model", sorted(PARAMETERS))
def test_trainable_and_total_parameters_of_each_configured_model(model):
    assert configured(model).parameter_counts() == PARAMETERS[model]


@pytest.mark.parametrize("model", sorted(PROFILES))
def test_each_configured_model_prepares_its_input_with_its_own_transform_profile(model):
    assert configured(model).transform_profile.name == PROFILES[model]


def test_a_bare_model_name_is_always_the_packaged_config_never_a_file_of_that_name_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlp").write_text("model:\n  class_path: somewhere.Else\n")
    assert resolve_config_argument("mlp") == str(CONFIG_DIR / "mlp.yaml")
    assert resolve_config_argument("./mlp") == "./mlp"
