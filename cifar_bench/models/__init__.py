"""The study's models as LightningModules over one shared base class."""

from cifar_bench.models.base import CifarClassifier
from cifar_bench.models.cnn import CNNClassifier
from cifar_bench.models.mlp import MLPClassifier
from cifar_bench.models.vgg16 import VGG16Classifier

__all__ = ["CNNClassifier", "CifarClassifier", "MLPClassifier", "VGG16Classifier"]
