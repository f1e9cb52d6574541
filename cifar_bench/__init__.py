"""cifar_bench: the CIFAR-10 study (MLP, CNNs, VGG16 transfer learning) as a PyTorch Lightning package."""

__version__ = "0.1.0"
