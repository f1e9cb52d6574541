"""What every model of the study shares: loss, metrics, logging, optimizer and schedule wiring."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import ClassVar, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassConfusionMatrix

from cifar_bench.checkpoints import check_checkpoint
from cifar_bench.data.augment import PROFILES, TransformProfile, prepare_batch
from cifar_bench.data.images import as_uint8_batch
from cifar_bench.data.sources import CLASS_NAMES, NUM_CLASSES
from cifar_bench.errors import CifarBenchError
from cifar_bench.figures import confusion_figure, prediction_grid_figure
from cifar_bench.models.metrics import logged_metrics

STAGES = ("train", "val", "test")
SAMPLE_IMAGES = 32  # validation images drawn with their predictions after every validation


def checked_dropout(dropout: float) -> float:
    if not 0 <= dropout < 1:
        raise CifarBenchError(f"dropout must be in [0, 1) (got {dropout})")
    return dropout


def count_weight_layers(net: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules())


class CifarClassifier(pl.LightningModule):
    """Base LightningModule: subclasses build ``self.net`` and may override how logits are computed.

    Args:
        lr: peak learning rate.
        optimizer: 'sgd' (with momentum, Nesterov), 'adam' or 'adamw'.
        momentum: SGD momentum, or Adam's beta1.
        weight_decay: L2 penalty on trainable parameters.
        lr_schedule: 'constant', 'cosine' (per step, to zero at the end of training) or 'onecycle'.
        warmup_epochs: ramp the learning rate linearly from near zero over this many epochs (fractions
            allowed) before the schedule starts; with 'onecycle', the length of its rising phase.
        label_smoothing: cross-entropy label smoothing for training batches (validation and test
            losses are always plain cross-entropy).
    """

    # What the network expects of its input; the model turns uint8 batches into it (``prepare_inputs``).
    transform_profile: ClassVar[TransformProfile] = PROFILES["cifar_augmented"]

    def __init__(
        self,
        lr: float = 0.05,
        optimizer: Literal["sgd", "adam", "adamw"] = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_schedule: Literal["constant", "cosine", "onecycle"] = "cosine",
        warmup_epochs: float = 0.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if lr <= 0:
            raise CifarBenchError(f"learning rate must be positive (got {lr})")
        if warmup_epochs < 0 or not 0 <= label_smoothing < 1:
            raise CifarBenchError(
                f"need warmup_epochs >= 0 and 0 <= label_smoothing < 1 (got {warmup_epochs}, {label_smoothing})"
            )
        if weight_decay < 0 or not 0 <= momentum < 1:
            raise CifarBenchError(f"need weight_decay >= 0 and 0 <= momentum < 1 (got {weight_decay}, {momentum})")
        self.save_hyperparameters()
        # ModuleDict keys may not shadow Module attributes such as ``train``, hence the suffix.
        self.class_names = CLASS_NAMES
        metrics = logged_metrics(self.class_names)
        self.metrics = nn.ModuleDict({f"{stage}_set": metrics.clone(prefix=f"{stage}/") for stage in STAGES})
        self.confusion = nn.ModuleDict({f"{stage}_set": MulticlassConfusionMatrix(NUM_CLASSES) for stage in STAGES})
        # nan_strategy="disable": a diverged run's loss stays NaN instead of NaN batches being dropped.
        self.losses = nn.ModuleDict({f"{stage}_set": MeanMetric(nan_strategy="disable") for stage in STAGES})
        # Per stage, (loss, predictions, labels) of each step of the running epoch, left on the device.
        self.epoch_outputs: dict[str, list] = {stage: [] for stage in STAGES}
        # The first validation images of the epoch, as uint8, for the sample-predictions figure.
        self.sample_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        # Lets Lightning's model summary show layer shapes and FLOPs.
        self.example_input_array = torch.zeros(1, 3, 32, 32)

    # --- what a subclass says about itself -------------------------------------------------------
    @property
    def weight_layers(self) -> int:
        return count_weight_layers(self.net)

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.parameters())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def use_channels_last(self, enabled: bool) -> None:
        """Store convolution weights NHWC: oneDNN (CPU) and cuDNN convolve faster so, in bf16 above all; same outputs."""
        if enabled:
            self.net.to(memory_format=torch.channels_last)

    # --- input preparation: the one place uint8 images become network input -----------------------
    def prepare_inputs(self, images: torch.Tensor, train: bool = False) -> torch.Tensor:
        """uint8 (N, 3, 32, 32) images to this network's input on its device; augmented only if ``train``."""
        return prepare_batch(images.to(self.device), self.transform_profile, train=train)

    @torch.inference_mode()
    def predict(self, images, batch_size: int = 500) -> torch.Tensor:
        """Class probabilities (N, 10), on the CPU, of a uint8 tensor (N, 3, H, W) or a list of PIL images
        (any mode, made RGB); images not 32x32 are resized with antialiasing. Prepared as for evaluation."""
        batch, was_training = as_uint8_batch(images), self.training
        self.eval()
        try:
            chunks = [
                self(self.prepare_inputs(batch[i : i + batch_size])).float().softmax(dim=1).cpu()
                for i in range(0, len(batch), batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(chunks)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Lightning's hook: augment (training only) and normalise each batch on the model's device."""
        if isinstance(batch, torch.Tensor):
            return batch  # the model summary's example_input_array: network input already
        images, labels, indices = batch
        trainer = self._trainer
        training = trainer is not None and trainer.training
        if trainer is not None and (trainer.validating or trainer.sanity_checking) and self.sample_batch is None:
            self.sample_batch = (images[:SAMPLE_IMAGES].cpu(), labels[:SAMPLE_IMAGES].cpu())
        return self.prepare_inputs(images, train=training), labels, indices

    def ready_batches(self, loader: Iterable, train: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(input, labels) batches for a loop of one's own over a DataModule loader, e.g.
        ``for inputs, labels in model.ready_batches(dm.train_dataloader(), train=True)``."""
        for images, labels, *_ in loader:
            yield self.prepare_inputs(images, train=train), labels.to(self.device)

    def logits(self, batch, stage: str) -> torch.Tensor:
        """Logits for a prepared batch; a subclass may serve them from a cache using the batch's indices."""
        return self(batch[0])

    # --- steps -----------------------------------------------------------------------------------
    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        """The batch's loss; its predictions wait on the device until the epoch's metrics are computed.

        Metric updates and ``self.log`` cost Python time every step (more than the whole step of the
        MLP at batch 64 on a CPU); fed once per epoch, the same torchmetrics cost nothing, and no step
        waits for the device.
        """
        labels = batch[1]
        logits = self.logits(batch, stage)
        smoothing = self.hparams.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)
        self.epoch_outputs[stage].append((loss.detach(), logits.detach().argmax(dim=1), labels))
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Class probabilities, (N, 10)."""
        return self(batch[0]).float().softmax(dim=1)

    # --- epoch metrics, figures ------------------------------------------------------------------
    def _log_epoch(self, stage: str) -> torch.Tensor | None:
        """Log the epoch's loss and metrics; returns the confusion matrix (None without steps).

        ``compute()`` gathers every rank's states under DDP, in the same order on every rank; the
        values logged are then global already, and ``sync_dist`` averages identical values.
        """
        outputs, self.epoch_outputs[stage] = self.epoch_outputs[stage], []
        if not outputs:
            return None
        key = f"{stage}_set"
        losses, predictions, labels = zip(*outputs)
        sizes = torch.tensor([len(batch) for batch in labels], device=losses[0].device)
        predictions, labels = torch.cat(predictions), torch.cat(labels)
        # One entry per image: the mean weighs batches by size (MeanMetric ignores weights when NaN checks are off).
        loss_metric, metrics, confusion_metric = self.losses[key], self.metrics[key], self.confusion[key]
        loss_metric.update(torch.stack(losses).repeat_interleave(sizes))
        metrics.update(predictions, labels)
        confusion_metric.update(predictions, labels)
        loss, values, confusion = loss_metric.compute(), metrics.compute(), confusion_metric.compute()
        for metric in (loss_metric, metrics, confusion_metric):
            metric.reset()
        self.log(f"{stage}/loss", loss, prog_bar=stage != "test", sync_dist=True)
        self.log_dict(values, sync_dist=True)
        if stage == "val":  # the metrics of TensorBoard's HPARAMS tab (declared in on_fit_start)
            self.log_dict({"hp/val_acc": values["val/acc"], "hp/val_f1_macro": values["val/f1_macro"]}, sync_dist=True)
        return confusion

    def on_train_epoch_start(self) -> None:
        self.epoch_outputs["train"] = []

    def on_validation_epoch_start(self) -> None:
        self.epoch_outputs["val"] = []
        self.sample_batch = None

    def on_test_epoch_start(self) -> None:
        self.epoch_outputs["test"] = []

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_validation_epoch_end(self) -> None:
        confusion = self._log_epoch("val")
        if confusion is None or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        logger = self.logger
        if isinstance(logger, TensorBoardLogger):
            self._write_figures(logger, confusion)

    def _write_figures(self, logger: TensorBoardLogger, confusion: torch.Tensor) -> None:
        step = self.current_epoch
        logger.experiment.add_figure("val/confusion_matrix", confusion_figure(confusion.cpu(), self.class_names), step)
        if self.sample_batch is not None:
            images, labels = self.sample_batch
            with torch.no_grad():
                predictions = self(self.prepare_inputs(images)).argmax(dim=1).cpu()
            figure = prediction_grid_figure(images, predictions, labels, self.class_names)
            logger.experiment.add_figure("val/sample_predictions", figure, step)

    def on_fit_start(self) -> None:
        trainable, total = self.parameter_counts()
        if self.logger is not None:
            self.logger.log_metrics(
                {
                    "model/weight_layers": self.weight_layers,
                    "model/trainable_params": trainable,
                    "model/total_params": total,
                },
                step=0,
            )
            # With default_hp_metric false (base.yaml), this is what lists the run in the HPARAMS tab.
            self.logger.log_hyperparams(self.hparams, {"hp/val_acc": 0, "hp/val_f1_macro": 0})
        self.print(
            f"{type(self).__name__}: {self.weight_layers} weight layers, {trainable:,} of {total:,} parameters trained"
        )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Lightning's hook on every load (a resumed fit, ``load_from_checkpoint``): refuse, with one clear
        message, a checkpoint that is not of this model with these settings (``check_checkpoint`` decides)."""
        check_checkpoint(checkpoint, "the checkpoint", model=self)

    # --- optimisation ------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict]:
        """The trainable parameters as optimizer groups; a subclass may give a group an ``lr_scale``
        (a factor on the learning rate) or its own weight_decay."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self):
        hp = self.hparams
        groups = [
            {
                **{key: value for key, value in group.items() if key != "lr_scale"},
                "lr": hp.lr * group.get("lr_scale", 1.0),
            }
            for group in self.parameter_groups()
        ]
        # Fused kernels update every tensor in one pass; PyTorch's default on the CPU is a slow per-tensor loop.
        fused = self.device.type in ("cpu", "cuda") or None
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                groups,
                lr=hp.lr,
                momentum=hp.momentum,
                nesterov=hp.momentum > 0,
                weight_decay=hp.weight_decay,
                fused=fused,
            )
        else:
            adam = torch.optim.Adam if hp.optimizer == "adam" else torch.optim.AdamW
            optimizer = adam(groups, lr=hp.lr, betas=(hp.momentum, 0.999), weight_decay=hp.weight_decay, fused=fused)
        scheduler = self._schedule(optimizer)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _schedule(self, optimizer: torch.optim.Optimizer):
        """The per-step learning-rate schedule (None for a constant rate without warm-up)."""
        hp = self.hparams
        if hp.lr_schedule == "constant" and hp.warmup_epochs == 0:
            return None
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(steps - 1, round(hp.warmup_epochs * steps / max(1, self.trainer.max_epochs)))
        schedulers = torch.optim.lr_scheduler
        if hp.lr_schedule == "onecycle":
            max_lr = [group["lr"] for group in optimizer.param_groups]
            rising = warmup / steps if warmup > 0 else 0.3
            return schedulers.OneCycleLR(optimizer, max_lr=max_lr, total_steps=steps, pct_start=rising)
        main = schedulers.CosineAnnealingLR(optimizer, T_max=steps - warmup) if hp.lr_schedule == "cosine" else None
        if warmup <= 0:
            return main
        ramp = schedulers.LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup)
        return ramp if main is None else schedulers.SequentialLR(optimizer, [ramp, main], milestones=[warmup])
