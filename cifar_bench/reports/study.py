"""``cifar-bench study``: the whole study in one command: train every model, evaluate it, compare.

Each training and each evaluation runs in its own process, so a model that fails (a bad setting, a
missing weights file, a crash, running out of memory) is recorded as failed and the others go on;
the closing comparison lists it as failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml
from rich.console import Console

from cifar_bench.errors import CifarBenchError
from cifar_bench.reports.compare import compare, failure_marker
from cifar_bench.reports.output import write_json


def available_models(configs_dir: Path) -> list[str]:
    """Every model config beside base.yaml, by name."""
    return sorted(path.stem for path in configs_dir.glob("*.yaml") if path.stem != "base")


def takes_pretrained_weights(config: Path) -> bool:
    """Whether a model config sets ``model.init_args.weights`` (the VGG16 models), so --vgg_weights applies."""
    content = yaml.safe_load(config.read_text()) or {}
    return "weights" in ((content.get("model") or {}).get("init_args") or {})


def run_folders(save_dir: Path) -> set[Path]:
    return set(save_dir.glob("*/version_*"))


def cifar_bench(*words: str) -> int:
    """Run a cifar-bench command in a fresh process, its output streaming through; the exit status."""
    return subprocess.run([sys.executable, "-m", "cifar_bench", *words]).returncode


def study(
    models: list[str] | None = None,
    seeds: list[int] = (0,),
    configs_dir: str | Path = "configs",
    save_dir: str | Path = "lightning_logs",
    data_dir: str | None = None,
    vgg_weights: str | None = None,
    fit_args: list[str] = (),
    console: Console | None = None,
) -> list[dict]:
    """Train and evaluate each model once per seed (``seed_everything``; the validation split stays fixed)."""
    console = console or Console()
    configs_dir, save_dir = Path(configs_dir), Path(save_dir)
    base = configs_dir / "base.yaml"
    if not base.is_file():
        raise CifarBenchError(f"no {base}: run the study from the repository root, or pass --configs")
    known = available_models(configs_dir)
    models = models or known
    unknown = [model for model in models if model not in known]
    if unknown:
        raise CifarBenchError(f"unknown model {', '.join(unknown)}: choose among {', '.join(known)}")
    data_args = ["--data.data_dir", data_dir] if data_dir is not None else []
    for model in models:
        config = configs_dir / f"{model}.yaml"
        weights_args = ["--model.init_args.weights", vgg_weights] if vgg_weights and takes_pretrained_weights(config) else []
        for seed in seeds:
            console.rule(f"{model}, seed {seed}")
            before = run_folders(save_dir)
            fit = ["fit", "--config", str(base), "--config", str(config), "--seed_everything", str(seed)]
            fit += ["--trainer.logger.init_args.save_dir", str(save_dir), *data_args, *weights_args, *fit_args]
            status, stage = cifar_bench(*fit), "fit"
            new_runs = sorted(run_folders(save_dir) - before)
            if status == 0:
                if len(new_runs) != 1:
                    raise CifarBenchError(f"training {model} left {len(new_runs)} new run folders in {save_dir}, expected one")
                status, stage = cifar_bench("evaluate", "--ckpt", str(new_runs[0])), "evaluate"
            marker = failure_marker(save_dir, model, seed)
            if status == 0:
                marker.unlink(missing_ok=True)
                continue
            console.print(f"[red]{model} (seed {seed}) failed in {stage} with exit status {status}[/red]")
            record = {"model": model, "seed": seed, "stage": stage, "exit_status": status, "command": ["cifar-bench", *fit]}
            write_json(marker, {**record, "run": str(new_runs[0]) if new_runs else None})
    return compare(save_dir, data_dir, console=console)


def main(argv: list[str]) -> None:
    words, fit_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(
        prog="cifar-bench study",
        description="Train every model with its config, evaluate each, end with the comparison table.",
        epilog="Arguments after -- go to every `cifar-bench fit`, e.g. -- --trainer.max_epochs 2",
    )
    parser.add_argument("--models", nargs="+", default=None, help="model configs to run (default: all in --configs)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="one run per seed (seed_everything)")
    parser.add_argument("--configs", default="configs", help="folder holding base.yaml and one YAML per model")
    parser.add_argument("--save_dir", default="lightning_logs", help="where runs, their evaluations and the comparison go")
    parser.add_argument("--data_dir", default=None, help="folder holding CIFAR-10 (default: the configs' data.data_dir)")
    parser.add_argument("--vgg_weights", default=None, help="local VGG16 weights file for the VGG16 models (offline machines)")
    args = parser.parse_args(words)
    study(args.models, args.seeds, args.configs, args.save_dir, args.data_dir, args.vgg_weights, fit_args)
