"""LightningCLI for fit/validate/test (the package has its own predict), with the package's configs and guards;
below the entry point (``cli.py``), so that the benchmark builds models and Trainers from the same configs."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from cifar_bench.arguments import refuse_bad_seed
from cifar_bench.configs import BASE_CONFIG, resolve_config_argument
from cifar_bench.data import CIFAR10DataModule
from cifar_bench.environment import default_precision
from cifar_bench.errors import CifarBenchError, first_line
from cifar_bench.models import CifarClassifier, known_model
from cifar_bench.models.networks.vgg16 import WEIGHT_WORDS
from cifar_bench.output import refuse_links, write_text
from cifar_bench.run_folder import CONFIG_FILE, RunFolder
from cifar_bench.training.callbacks import read_environment_first
from cifar_bench.training.checkpoint_io import hand_over, handed_over, handing_over, refuse_other_loader
from cifar_bench.training.checkpoints import as_model_config, read_checkpoint
from cifar_bench.training.locks import claim_version, hold_lock
from cifar_bench.training.resume_state import check_training_state
from cifar_bench.training.trainer_settings import check_trainer_settings

CONFIG_OPTIONS = ("--config", "-c")
# The --ckpt_path values Lightning resolves itself instead of reading a file.
LIGHTNING_CHECKPOINT_WORDS = ("last", "best", "hpc", "registry")
# The model settings that name a file or folder, and the words each also takes, which a checkpoint may set.
PATH_SETTINGS = {"feature_store": (None,), "weights": WEIGHT_WORDS}


def with_packaged_configs(words: list[str]) -> list[str]:
    """The command line with each ``--config NAME`` (a bare model name) pointing at the packaged config."""
    resolved = []
    for index, word in enumerate(words):
        if index and words[index - 1] in CONFIG_OPTIONS:
            word = resolve_config_argument(word)
        elif word.startswith("--config="):
            word = "--config=" + resolve_config_argument(word.removeprefix("--config="))
        resolved.append(word)
    return resolved


def quiet_third_party_noise() -> None:
    """Silence exactly the messages of other packages that tell a user of this one nothing."""
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
    # The model, not the DataModule, prepares batches: that is the design, not a mistake.
    warnings.filterwarnings(
        "ignore", message=r"You have overridden `on_after_batch_transfer` in `LightningModule` but have passed in a"
    )
    # The models log once per epoch, values torchmetrics has already gathered from every rank: neither
    # Lightning's per-step logging interval nor its advice to sync epoch values across ranks applies.
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging")
    warnings.filterwarnings("ignore", message=r"It is recommended to use `self.log\(.*sync_dist=True\)`")
    # LightningCLI is always handed the words cifar-bench resolved, while sys.argv holds those typed.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )


class SaveRunConfig(SaveConfigCallback):
    """Save the resolved config.yaml into the run folder, and nowhere when there is none (logger off):
    Lightning would otherwise write it into the current folder. Written whole by ``write_text``, which
    replaces a link planted at its name (Lightning's own save wrote through it)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.logger is None or self.already_saved:
            return
        log_dir = trainer.log_dir  # broadcast: every rank asks
        if trainer.is_global_zero:
            write_text(Path(log_dir) / self.config_filename, self.parser.dump(self.config, skip_none=False))
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)


def latest_version_with_last_checkpoint(save_dir: Path, name: str) -> int | None:
    """The newest ``version_N`` under save_dir/name holding a ``last.ckpt``, if any."""
    versions = []
    for folder in (save_dir / name).glob("version_*"):
        suffix = folder.name.removeprefix("version_")
        if suffix.isdigit() and RunFolder(folder).last_checkpoint.is_file():
            versions.append(int(suffix))
    return max(versions, default=None)


def read_data_first(trainer, datamodule, stage: str) -> None:
    """Unpack (or download) and read the data before the Trainer starts, in the process that prepares it.

    The logger creates its run folder and an events file as the Trainer starts, before Lightning's own
    data hooks run: bad data read first leaves no run folder behind. Only the process Lightning would
    prepare the data in does it (local rank 0, or global rank 0 without ``prepare_data_per_node``), as
    the DataModule's contract says; the other DDP ranks read it in Lightning's own setup, which waits
    at a barrier until the data is prepared.
    """
    preparing_rank = trainer.local_rank if datamodule.prepare_data_per_node else trainer.global_rank
    if preparing_rank != 0:
        return
    datamodule.prepare_data()
    datamodule.setup(stage)  # the Trainer's own call then finds the data read


class CifarBenchCLI(LightningCLI):
    """LightningCLI with the hardware's precision by default, ``--ckpt_path last`` resumed in the run's own
    folder, settings Lightning would accept silently or fail on late refused up front, and the data read and
    checked before the Trainer runs: bad input leaves nothing behind, not even the logger's run folder."""

    def parse_arguments(self, parser, args) -> None:
        words = sys.argv[1:] if args is None else args
        super().parse_arguments(parser, with_packaged_configs(list(words)) if isinstance(words, list) else args)
        # LightningCLI reads the checkpoint's hyperparameters right after parsing: check it first.
        config = self.config.get(self.config.get("subcommand") or "", self.config)
        refuse_bad_seed(config.get("seed_everything"), "--seed_everything")
        settings = getattr(config.get("model"), "init_args", None)
        checked = self._check_checkpoint(
            config.get("ckpt_path"),
            known_model(getattr(config.get("model"), "class_path", None)),
            settings.as_dict() if settings is not None else {},
        )
        hand_over(config.get("ckpt_path"), checked)  # what Lightning reads and loads: the file is not read again

    def _parse_ckpt_path(self) -> None:
        """As LightningCLI, a ``--ckpt_path`` file's hyperparameters over the command line's, from the checkpoint
        handed over, not the file; those naming a file or folder (``PATH_SETTINGS``) stay the command line's."""
        subcommand = self.config.get("subcommand")
        model_config = as_model_config(handed_over(self.config[subcommand].get("ckpt_path")) if subcommand else None)
        if not model_config:
            return
        given = self.config.clone()
        self.config = self.parser.parse_object({subcommand: {"model": model_config}}, self.config)
        model, user = (getattr(c[subcommand].get("model"), "init_args", None) for c in (self.config, given))
        for name, words in PATH_SETTINGS.items():
            if model is None or model.get(name) is None or model.get(name) in words:  # None: not one of its settings
                continue
            if user is None or name not in user:  # the checkpoint's model is not the one the command line builds
                raise CifarBenchError(
                    f"{self.config[subcommand].get('ckpt_path')} names {name} {model.get(name)!r} for a model the "
                    "command line does not build: pass that model's config, whose own setting is then used"
                )
            model[name] = user[name]

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        check_trainer_settings(config.trainer)
        if config.trainer.get("precision") is None:  # set by no config and no flag: the hardware's fast one
            config.trainer.precision = default_precision(config.trainer.get("accelerator") or "auto")
        unusable = []
        if config.trainer.get("enable_progress_bar") is False:
            unusable.append("ProgressBar")
        if config.trainer.get("logger") in (False, None):
            unusable.append("LearningRateMonitor")
        if unusable and config.trainer.get("callbacks"):
            config.trainer.callbacks = [
                callback for callback in config.trainer.callbacks if not callback.class_path.endswith(tuple(unusable))
            ]
        if self.subcommand == "fit":
            self._resume_in_latest_version(config)
            if config.get("ckpt_path") is not None:
                # A resumed run writes into its own checkpoint folder on purpose.
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")

    def _check_inputs(self) -> None:
        """Check the checkpoint ``--ckpt_path last`` means, what a fit resumes besides the weights, then read the
        data: bad input stops here."""
        self._check_last_checkpoint()
        ckpt_path = self.config_init[self.subcommand].get("ckpt_path")
        resumed = handed_over(ckpt_path) if self.subcommand == "fit" else None
        if resumed is not None:
            # Against the model built, as it will be trained: one rebuilt from the checkpoint alone has no
            # pretrained weights loaded, so its optimizer groups differ wherever pretrained layers are trained.
            check_training_state(resumed, str(ckpt_path), self.model, self.trainer.max_epochs)
        refuse_other_loader(self.trainer.strategy, ckpt_path)
        read_data_first(self.trainer, self.datamodule, self.subcommand)

    def _check_inputs_and_take_a_version(self) -> None:
        """validate and test: their run folder (config.yaml, TensorBoard events) is a version of their own too."""
        self._check_inputs()
        self._take_a_version()

    before_validate = before_test = _check_inputs_and_take_a_version

    def _take_a_version(self) -> bool:
        """The writing rank fixes the run's version, under claim_version's lock unless the config names one (a
        study's seedN, a resume): False on other ranks (before the strategy is set up, a launched rank reads global
        rank 0, its local or node rank does not) or with no folder (a fast_dev_run). log_dir, read before the
        claim, would choose the version outside the lock."""
        trainer = self.trainer
        writer = trainer.global_rank == trainer.local_rank == trainer.node_rank == 0
        if not writer or getattr(trainer.logger, "root_dir", None) is None:
            return False
        if self._named_version() is None:
            claim_version(trainer.logger)
        return True

    def _named_version(self):
        """The logger version the config names (a study's seedN, a resume), None when it is the logger's to choose."""
        config = self.config.get(self.subcommand, self.config)
        return (getattr(config.trainer.get("logger"), "init_args", None) or {}).get("version")

    def _check_last_checkpoint(self) -> None:
        """``--ckpt_path last``: the run folder's last.ckpt, checked against the model the config built, then named
        to Lightning (whose own ``last`` would load a planted ``last_x.ckpt`` unchecked); none where the logger
        has yet to choose a version (chosen only under ``claim_version``'s lock)."""
        arguments, logger = self.config_init[self.subcommand], self.trainer.logger
        if arguments.get("ckpt_path") != "last":
            return
        named = logger is None or self._named_version() is not None
        folder = (self.trainer.default_root_dir if logger is None else logger.log_dir) if named else None
        last = RunFolder(Path(folder)).last_checkpoint if folder else "a new run's last.ckpt"
        if folder and os.path.lexists(last):
            hand_over(last, read_checkpoint(last, model=self.model))
        else:
            warnings.warn(f"--ckpt_path last: there is no {last}, so nothing is resumed", stacklevel=2)
        arguments["ckpt_path"] = str(last) if folder and os.path.lexists(last) else None

    def instantiate_trainer(self, **kwargs) -> pl.Trainer:
        """The Trainer, or one error line for settings it refuses (an accelerator absent here, 0 devices)."""
        try:
            return super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, TypeError) as error:
            raise CifarBenchError(f"the Trainer refuses these settings: {first_line(error)}") from None

    def before_fit(self) -> None:
        """Read the data, then take the run folder: a version of its own, locked for as long as the fit runs
        (by the rank that writes, once the input is known good: bad input leaves no folder)."""
        self._check_inputs()
        trainer, logger = self.trainer, self.trainer.logger
        if self._take_a_version():
            run = RunFolder(Path(logger.log_dir))
            refuse_links((run.path, run.checkpoints), Path(logger.save_dir))
            read_environment_first(trainer, run)  # a resumed run's environment.json: checked before anything is written
            self._run_lock = hold_lock(Path(logger.log_dir), "fit")

    def after_fit(self) -> None:
        """Free the run folder for the next fit in this process (a process that ends frees it anyway)."""
        lock = getattr(self, "_run_lock", None)
        if lock is not None:
            lock.release()

    @staticmethod
    def subcommands() -> dict:
        """fit, validate and test: ``cifar-bench predict`` is the package's own command (evaluation/predict.py)."""
        return {name: hooks for name, hooks in LightningCLI.subcommands().items() if name != "predict"}

    @staticmethod
    def _check_checkpoint(ckpt_path: str | None, model_class: type | None, settings: dict) -> dict | None:
        """A checkpoint path must exist and ``read_checkpoint`` accept it for the model LightningCLI will build,
        before Lightning imports the class it names; 'last' is checked later, 'best' and the like are Lightning's
        (a file of that name in the current folder, which LightningCLI would load first, is refused)."""
        if ckpt_path in LIGHTNING_CHECKPOINT_WORDS:
            if os.path.lexists(ckpt_path):
                raise CifarBenchError(
                    f"--ckpt_path {ckpt_path} means Lightning's {ckpt_path!r} checkpoint, but a file of that name in "
                    f"{Path.cwd()} would be loaded instead: remove or rename it, or pass ./{ckpt_path} to load that file"
                )
            return
        if ckpt_path is None:
            return
        if not Path(ckpt_path).is_file():
            raise CifarBenchError(f"checkpoint {ckpt_path} does not exist: pass a .ckpt file, or 'last' to resume")
        # One naming no class: the config's. A fit resumes from it: its optimizer state is checked too.
        return read_checkpoint(ckpt_path, default=model_class, settings=settings)

    @staticmethod
    def _resume_in_latest_version(config) -> None:
        logger = config.trainer.get("logger")
        if config.get("ckpt_path") != "last" or not logger or not hasattr(logger, "init_args"):
            return
        args = logger.init_args
        if args.get("version") is None and "save_dir" in args:
            args["version"] = latest_version_with_last_checkpoint(
                Path(args["save_dir"]), args.get("name") or "lightning_logs"
            )


def run_lightning_cli(
    argv: list[str] | None,
    cli_class: type[CifarBenchCLI] = CifarBenchCLI,
    datamodule_class: type[CIFAR10DataModule] = CIFAR10DataModule,
    callbacks: tuple[pl.Callback, ...] = (),
) -> CifarBenchCLI:
    """``argv`` None reads sys.argv, as LightningCLI prefers when run from a shell; returns the finished CLI.

    A sweep's trial runs its own subclasses and adds its pruning callback, which no config.yaml records."""
    with handing_over():  # a checkpoint checked is held for this run only
        return cli_class(
            CifarClassifier,
            datamodule_class,
            subclass_mode_model=True,
            args=argv,
            trainer_defaults={"callbacks": list(callbacks)},
            parser_kwargs={
                "prog": "cifar-bench",
                "exit_on_error": False,
                # Every run starts from base.yaml, so that a model's config alone is a whole configuration;
                # later --config files and flags override it.
                **{command: {"default_config_files": [str(BASE_CONFIG)]} for command in CifarBenchCLI.subcommands()},
            },
            save_config_callback=SaveRunConfig,
            save_config_kwargs={"overwrite": True, "config_filename": CONFIG_FILE},
        )
