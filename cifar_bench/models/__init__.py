"""The study's models as LightningModules over one shared base class, and the registry of them that
configs and checkpoints name by class path."""

from cifar_bench.models.base import CifarClassifier
from cifar_bench.models.cnn import CNNClassifier
from cifar_bench.models.mlp import MLPClassifier
from cifar_bench.models.vgg16 import VGG16Classifier

__all__ = ["CNNClassifier", "CifarClassifier", "MLPClassifier", "VGG16Classifier", "MODEL_CLASSES", "known_model"]

# The models by the class path configs and checkpoints record: the only classes any of them may name.
MODEL_CLASSES: dict[str, type[CifarClassifier]] = {
    f"{__name__}.{cls.__name__}": cls for cls in (CNNClassifier, MLPClassifier, VGG16Classifier)
}


def known_model(class_path: object) -> type[CifarClassifier] | None:
    """The model class a class path names, among this package's models only (compared by name: nothing is imported)."""
    return MODEL_CLASSES.get(class_path) if isinstance(class_path, str) else None
