"""What every model of the study shares: loss, metrics and logging, the one inference path, mid-epoch resumes."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeFloat, PositiveFloat
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MeanMetric

from cifar_bench.arguments import FloatFrom0Below1, refuse_out_of_range
from cifar_bench.data.augment import PROFILES, TransformProfile, prepare_batch
from cifar_bench.data.images import as_uint8_batch
from cifar_bench.data.sources import CLASS_NAMES, IMAGE_SHAPE
from cifar_bench.models.metrics import confusion_matrix, logged_metrics
from cifar_bench.models.optimization import build_optimizer, build_schedule, continue_schedule

STAGES = ("train", "val", "test")
SAMPLE_IMAGES = 32
"""Validation images kept each epoch for TensorBoard's sample-predictions grid (and evaluate's test grid)."""


def count_weight_layers(net: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules())


# Where a mid-epoch checkpoint keeps the running epoch's (loss, predictions, labels) of each step.
RUNNING_EPOCH_KEY = "running_epoch_train_outputs"


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
    # Whether its ``weights`` option loads pretrained weights (VGG16), so that its runs say which (weights_record).
    loads_pretrained_weights: ClassVar[bool] = False

    def __init__(
        self,
        lr: PositiveFloat = 0.05,
        optimizer: Literal["sgd", "adam", "adamw"] = "sgd",
        momentum: FloatFrom0Below1 = 0.9,
        weight_decay: NonNegativeFloat = 5e-4,
        lr_schedule: Literal["constant", "cosine", "onecycle"] = "cosine",
        warmup_epochs: NonNegativeFloat = 0.0,
        label_smoothing: FloatFrom0Below1 = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        refuse_out_of_range(type(self), self.hparams)
        # ModuleDict keys may not shadow Module attributes such as ``train``, hence the suffix.
        self.class_names = CLASS_NAMES
        metrics = logged_metrics(self.class_names)
        self.metrics = nn.ModuleDict({f"{stage}_set": metrics.clone(prefix=f"{stage}/") for stage in STAGES})
        self.val_confusion = confusion_matrix()
        # The last validation epoch's confusion matrix, for a logger callback to draw (training.callbacks).
        self.last_val_confusion: torch.Tensor | None = None
        # nan_strategy="disable": a diverged run's loss stays NaN instead of NaN batches being dropped.
        self.losses = nn.ModuleDict({f"{stage}_set": MeanMetric(nan_strategy="disable") for stage in STAGES})
        # Per stage, (loss, predictions, labels) of each step of the running epoch, left on the device.
        self.epoch_outputs: dict[str, list] = {stage: [] for stage in STAGES}
        # The first validation images of the epoch, as uint8, for the sample-predictions figure.
        self.sample_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        # Lets Lightning's model summary show layer shapes and FLOPs.
        self.example_input_array = torch.zeros(1, *IMAGE_SHAPE)

    # The checkpoint a fit resumes from, between Lightning loading it and building the optimizer.
    _resumed_checkpoint: dict | None = None

    # --- what a subclass says about itself -------------------------------------------------------
    @property
    def weight_layers(self) -> int:
        return count_weight_layers(self.net)

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.parameters())

    def study_parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters as the study counts them: the network it describes (VGG16's differs)."""
        return self.parameter_counts()

    def weights_record(self) -> dict | None:
        """Where the weights it started from came from (VGG16's pretrained ones); None: initialised here."""
        return None

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
    def predict_logits(self, images, batch_size: int = 500) -> torch.Tensor:
        """Float32 logits (N, 10), on the CPU, of a uint8 tensor (N, 3, H, W) or a list of PIL images (any
        mode, made RGB; not 32x32: resized with antialiasing), in eval mode: what evaluate, predict and the
        bench run. Inputs take the weights' dtype (a ``bf16-true`` or ``64-true`` Fabric converts only the
        weights); mixed precision is the caller's autocast context (``fabric.autocast()`` in evaluate)."""
        batch, was_training = as_uint8_batch(images), self.training
        self.eval()
        try:
            chunks = [
                self(self.prepare_inputs(batch[i : i + batch_size]).to(self.dtype)).float().cpu()
                for i in range(0, len(batch), batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(chunks)

    def predict(self, images, batch_size: int = 500) -> torch.Tensor:
        """Class probabilities (N, 10): the softmax of ``predict_logits``."""
        return self.predict_logits(images, batch_size).softmax(dim=1)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Lightning's hook: augment (training only) and normalise each batch on the model's device."""
        if isinstance(batch, torch.Tensor):
            return batch  # the model summary's example_input_array: network input already
        images, labels, indices = batch
        stage = self._batch_stage()
        if stage == "val" and self.sample_batch is None:
            self.sample_batch = (images[:SAMPLE_IMAGES].cpu(), labels[:SAMPLE_IMAGES].cpu())
        return self.network_inputs(images, stage), labels, indices

    def _batch_stage(self) -> str:
        """The stage of the batch in hand: 'train', 'val' (sanity checks included) or 'test' (test, predict)."""
        trainer = self._trainer
        if trainer is not None and trainer.training:
            return "train"
        if trainer is not None and (trainer.validating or trainer.sanity_checking):
            return "val"
        return "test"

    def network_inputs(self, images: torch.Tensor, stage: str) -> torch.Tensor:
        """A batch's uint8 images as what ``logits`` takes for this stage: prepared, augmented in training."""
        return self.prepare_inputs(images, train=stage == "train")

    def logits(self, batch, stage: str) -> torch.Tensor:
        """Logits for a prepared batch; a subclass may compute them from stored features by the batch's indices."""
        return self(batch[0])

    # --- steps -----------------------------------------------------------------------------------
    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        """The batch's loss; its predictions wait on the device until the epoch's metrics are computed: updated
        every step, the torchmetrics added 30-50% to the MLP's step, and Lightning drops per-class values."""
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
        """Class probabilities (N, 10) as ``predict`` computes them: the batch comes prepared as its chunks are."""
        return self(batch[0]).float().softmax(dim=1)

    # --- epoch metrics ------------------------------------------------------------------
    def _log_epoch(self, stage: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Log the epoch's loss and metrics from its stored steps; returns (predictions, labels), None without steps.

        ``compute()`` gathers every rank's states under DDP, in the same order on every rank: the values are
        global already, so they are logged as they are (no ``sync_dist``).
        """
        outputs, self.epoch_outputs[stage] = self.epoch_outputs[stage], []
        if not outputs:
            return None
        key = f"{stage}_set"
        losses, predictions, labels = zip(*outputs)
        sizes = torch.tensor([len(batch) for batch in labels], device=losses[0].device)
        predictions, labels = torch.cat(predictions), torch.cat(labels)
        # One entry per image: the mean weighs batches by size (MeanMetric ignores weights when NaN checks are off).
        loss_metric, metrics = self.losses[key], self.metrics[key]
        loss_metric.update(torch.stack(losses).repeat_interleave(sizes))
        metrics.update(predictions, labels)
        loss, values = loss_metric.compute(), metrics.compute()
        loss_metric.reset()
        metrics.reset()
        self.log(f"{stage}/loss", loss, prog_bar=stage != "test")
        self.log_dict(values)
        if stage == "val":  # the metrics of TensorBoard's HPARAMS tab (declared in on_fit_start)
            self.log_dict({"hp/val_acc": values["val/acc"], "hp/val_f1_macro": values["val/f1_macro"]})
        return predictions, labels

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
        outputs = self._log_epoch("val")
        if outputs is None or self.trainer.sanity_checking:
            return
        self.val_confusion.update(*outputs)
        self.last_val_confusion = self.val_confusion.compute()  # on every rank: compute() gathers them all
        self.val_confusion.reset()

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
        """A checkpoint saved mid-epoch (on a SIGTERM) brings back the epoch's steps so far; a fit resuming from
        it takes its learning-rate schedule from this fit's plan, not from the file (``configure_optimizers``).
        Whether the file is one of this model's was decided where it entered (``training/checkpoints``)."""
        steps = checkpoint.get(RUNNING_EPOCH_KEY, [])
        if isinstance(steps, list) and all(
            isinstance(step, (list, tuple)) and len(step) == 3 and all(isinstance(t, torch.Tensor) for t in step)
            for step in steps
        ):
            self.epoch_outputs["train"] = [tuple(step) for step in steps]
        if self._trainer is not None and self.trainer.state.fn == "fit":
            self._resumed_checkpoint = checkpoint  # its schedule is replaced by this fit's (configure_optimizers)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Mid-epoch (a SIGTERM's checkpoint), keep the epoch's steps so far, so that a resumed run logs the
        same training metrics for that epoch as an uninterrupted one: a label and a prediction an image."""
        if self._trainer is not None and self.trainer.received_sigterm and self.epoch_outputs["train"]:
            checkpoint[RUNNING_EPOCH_KEY] = [tuple(t.cpu() for t in step) for step in self.epoch_outputs["train"]]

    def on_train_start(self) -> None:
        self.epoch_outputs["train"] = [tuple(t.to(self.device) for t in step) for step in self.epoch_outputs["train"]]

    # --- optimisation ------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict]:
        """The trainable parameters as optimizer groups; a subclass may give a group an ``lr_scale``
        (a factor on the learning rate) or its own weight_decay."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = build_optimizer(self.parameter_groups(), hp, self.device)
        unscheduled, scheduler, total_steps = [dict(group) for group in optimizer.param_groups], None, 0
        if hp.lr_schedule != "constant" or hp.warmup_epochs != 0:  # else no schedule, and no Trainer needed to plan one
            total_steps = int(self.trainer.estimated_stepping_batches)
            # None: a constant rate whose warm-up rounds to no step
            scheduler = build_schedule(optimizer, hp, total_steps, self.trainer.max_epochs)
        resumed, self._resumed_checkpoint = self._resumed_checkpoint, None
        changed = resumed is not None and continue_schedule(resumed, optimizer, scheduler, unscheduled, total_steps)
        if changed:
            rank_zero_warn(
                f"{self.trainer.ckpt_path} holds another learning-rate schedule than this fit plans (--trainer.max_epochs, "
                f"the batches per epoch or the schedule's settings differ): {changed}"
            )
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
