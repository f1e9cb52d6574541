"""The fast paths keep their function: epoch metrics as before, subsets stratified, NHWC weights same outputs."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassRecall

from cifar_bench.data import CIFAR10DataModule
from cifar_bench.errors import CifarBenchError
from cifar_bench.models import CNNClassifier, MLPClassifier


def quiet_trainer(**options) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )


def test_epoch_metrics_cover_every_image_with_the_loss_weighted_by_batch_size(binary_copy):
    # 40 validation images in batches of 16: the last batch holds 8, so a mean of batch means would be off.
    datamodule = CIFAR10DataModule(binary_copy, download=False, val_size=40, eval_batch_size=16)
    model = MLPClassifier()
    logged = quiet_trainer().validate(model, datamodule=datamodule, verbose=False)[0]

    images, labels = datamodule.split("val")
    with torch.no_grad():
        logits = model(model.prepare_inputs(images))
    assert logged["val/loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    predictions = logits.argmax(dim=1)
    assert logged["val/acc"] == pytest.approx(MulticlassAccuracy(10, average="micro")(predictions, labels).item())
    per_class = MulticlassRecall(10, average=None)(predictions, labels)
    assert logged["val/class_acc/cat"] == pytest.approx(per_class[3].item())


def test_training_metrics_are_logged_once_per_epoch_and_the_buffers_emptied(binary_copy):
    datamodule = CIFAR10DataModule(binary_copy, download=False, val_size=40, batch_size=32)
    model = MLPClassifier()
    trainer = quiet_trainer(max_epochs=1, limit_val_batches=0)
    trainer.fit(model, datamodule=datamodule)
    assert {"train/loss", "train/acc", "train/f1_macro", "train/class_f1/truck"} <= set(trainer.callback_metrics)
    assert math.isfinite(trainer.callback_metrics["train/loss"].item())
    assert all(outputs == [] for outputs in model.epoch_outputs.values())


def test_optimizer_on_the_cpu_is_the_fused_implementation():
    optimizer = MLPClassifier(lr_schedule="constant").configure_optimizers()
    assert optimizer.defaults["fused"] is True


def test_train_size_keeps_a_stratified_reproducible_subset_of_the_training_split(binary_copy):
    def subset(train_size):
        datamodule = CIFAR10DataModule(binary_copy, download=False, val_size=40, train_size=train_size)
        datamodule.setup("fit")
        return datamodule

    full, small = subset(None), subset(80)
    assert len(small.train_index) == 80
    assert set(small.train_index.tolist()) <= set(full.train_index.tolist())
    assert torch.equal(small.val_index, full.val_index)
    assert torch.bincount(small.split("train")[1], minlength=10).tolist() == [8] * 10
    assert torch.equal(subset(80).train_index, small.train_index)
    assert len(subset(10_000).train_index) == len(full.train_index)


def test_train_size_must_be_positive():
    with pytest.raises(CifarBenchError, match="train_size"):
        CIFAR10DataModule(train_size=0)


def test_channels_last_weights_compute_the_same_logits_as_nchw():
    torch.manual_seed(0)
    nhwc = CNNClassifier(batch_norm=True).eval()
    nchw = CNNClassifier(batch_norm=True, channels_last=False).eval()
    nchw.load_state_dict(nhwc.state_dict())
    conv = nhwc.net.features[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(nhwc(images), nchw(images), rtol=1e-4, atol=1e-5)
