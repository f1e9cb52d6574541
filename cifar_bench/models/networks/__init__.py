"""Plain nn.Module networks, independent of Lightning."""

from cifar_bench.models.networks.convnet import ConvNet9
from cifar_bench.models.networks.mlp import MLP
from cifar_bench.models.networks.vgg16 import VGG16, WEIGHT_LAYER_NAMES, load_vgg16_weights

__all__ = ["ConvNet9", "MLP", "VGG16", "WEIGHT_LAYER_NAMES", "load_vgg16_weights"]
