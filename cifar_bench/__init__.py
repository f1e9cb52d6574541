"""cifar_bench: the CIFAR-10 study (MLP, CNNs, VGG16 transfer learning) as a PyTorch Lightning package."""

import os

# Large CPU tensors on transparent huge pages (PyTorch reads this once, when it first allocates): a
# step that allocates big activations and gradients afresh page-faults far less (VGG16's trained fc
# layers step about twice as fast on a CPU). Set THP_MEM_ALLOC_ENABLE=0 to opt out.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
