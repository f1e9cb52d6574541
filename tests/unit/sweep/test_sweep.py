"""`cifar-bench sweep`: a tiny sweep writes its files and a best.yaml that fit trains, never reading the test
batch; a diverging trial is recorded as failed and the sweep goes on; the pruner stops a bad trial; workers
share one study and a killed one's trial is failed and replaced on the rerun; bad input is one error line."""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from conftest import REPO, cli_command, cli_environment, snapshot, wait_for, write_python_version

from cifar_bench.cli import main
from cifar_bench.data import sources
from cifar_bench.errors import CifarBenchError
from cifar_bench.sweep.command import ends
from cifar_bench.sweep.space import SPACES_DIR, fit_words, read_space
from cifar_bench.sweep.trial import ReportToTrial, check_fit_options

TINY_FIT = (
    *("--data.download", "false", "--data.val_size", "20", "--data.batch_size", "8", "--data.eval_batch_size", "64"),
    *("--trainer.max_epochs", "2", "--trainer.precision", "32-true"),
)
SPACE = "model.lr: {type: log_uniform, low: 0.001, high: 0.1}\nmodel.dropout: {type: uniform, low: 0.0, high: 0.5}\n"


def sweep_args(root: Path, data: Path, *options: str, fit: tuple[str, ...] = ()) -> list[str]:
    space = root / "space.yaml"
    if not space.exists():
        space.write_text(SPACE)
    return [
        *("sweep", "--model", "mlp", "--space", str(space), "--out", str(root / "sweep"), *options),
        *("--", "--data.data_dir", str(data), *TINY_FIT, *fit),
    ]


def trial_states(out: Path) -> list[tuple[int, str]]:
    with (out / "trials.csv").open(newline="") as handle:
        return [(int(row["number"]), row["state"]) for row in csv.DictReader(handle)]


@pytest.fixture
def test_batch_unreadable(tmp_path, monkeypatch) -> tuple[Path, list[str]]:
    """A data_dir whose test batch is not a batch at all, and the names of the batches read, as they are read."""
    folder = write_python_version(tmp_path / "data")
    (folder / "test_batch").write_bytes(b"not a pickle")
    read, reader = [], sources.read_python_batch
    monkeypatch.setattr(sources, "read_python_batch", lambda path: read.append(path.name) or reader(path))
    return tmp_path / "data", read


@pytest.mark.slow
def test_a_sweep_never_reads_the_test_batch_and_its_best_yaml_is_a_config_fit_trains(
    tmp_path, test_batch_unreadable, tiny_data, capfd
):
    data, read = test_batch_unreadable
    main(sweep_args(tmp_path, data, "--trials", "3", "--pruner", "none"))

    out = tmp_path / "sweep"
    assert trial_states(out) == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]  # a read test batch would fail them
    assert "test_batch" not in read and "data_batch_5" in read
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"]["COMPLETE"] == 3 and summary["wall_s"] > 0
    assert summary["storage"] == "sweep.db in the sweep's folder"  # no machine's path in evidence copied elsewhere
    best = summary["best"]
    assert (Path(best["run"]) / "config.yaml").is_file() and (Path(best["run"]) / "checkpoints" / "last.ckpt").is_file()
    overlay = yaml.safe_load((out / "best.yaml").read_text())
    assert overlay == {
        "model": {"init_args": {key.removeprefix("model."): value for key, value in best["params"].items()}}
    }
    assert (out / "optimization_history.png").stat().st_size > 0 and (out / "param_importances.png").is_file()
    printed = capfd.readouterr()
    lines = printed.out.splitlines()
    assert any(line.startswith("Trial 3 of 3") for line in lines)
    assert len(lines) == 8  # the sweep's own lines: no trial's fit lines (devices, seed, run folder)
    assert "GPU available" not in printed.err + printed.out and "Seed set" not in printed.err + printed.out
    assert lines[-1] == f"Next: cifar-bench fit --config mlp --config {out / 'best.yaml'}"

    logs = tmp_path / "refit"
    main(
        [
            *("fit", "--config", "mlp", "--config", str(out / "best.yaml"), "--data.data_dir", str(tiny_data)),
            *TINY_FIT,
            *("--trainer.max_epochs", "1", "--trainer.logger.init_args.save_dir", str(logs)),
        ]
    )
    (run,) = (logs / "mlp").glob("version_*")
    trained = yaml.safe_load((run / "config.yaml").read_text())["model"]["init_args"]
    assert trained["lr"] == best["params"]["model.lr"] and trained["dropout"] == best["params"]["model.dropout"]


@pytest.mark.slow
def test_a_diverging_trial_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path, tiny_data, capsys):
    (tmp_path / "space.yaml").write_text("model.lr: {type: categorical, choices: [1.0e+30]}\n")
    main(sweep_args(tmp_path, tiny_data, "--trials", "2", fit=("--model.momentum", "0.0")))

    out = tmp_path / "sweep"
    assert trial_states(out) == [(0, "FAIL"), (1, "FAIL")]
    with (out / "trials.csv").open(newline="") as handle:
        assert all("training loss became" in row["failure"] for row in csv.DictReader(handle))
    assert not (out / "best.yaml").exists()
    assert "No trial completed" in capsys.readouterr().out


class FakeTrial:
    """The Optuna trial ReportToTrial talks to, over a real study and pruner."""

    def __init__(self, study: optuna.Study):
        self.trial = study.ask()

    def report(self, value, step):
        self.trial.report(value, step)

    def should_prune(self):
        return self.trial.should_prune()


def test_the_median_pruner_stops_a_trial_below_the_others_at_the_end_of_its_epoch():
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=2)  # the command's, but 1 startup trial
    study = optuna.create_study(direction="maximize", pruner=pruner)
    finished = study.ask()
    for step in (1, 2, 3):
        finished.report(0.5, step)
    study.tell(finished, 0.5)
    reporters = {accuracy: ReportToTrial(FakeTrial(study)) for accuracy in (0.9, 0.1)}
    for epoch in (0, 1):
        for accuracy, reporter in reporters.items():
            trainer = SimpleNamespace(
                sanity_checking=False, should_stop=False, current_epoch=epoch, callback_metrics={"val/acc": accuracy}
            )
            reporter.on_validation_end(trainer, None)
            # The first epoch is never pruned; then the trial below the median is stopped, the one above goes on.
            assert trainer.should_stop == (epoch == 1 and accuracy == 0.1)
    assert reporters[0.1].pruned_after == 2 and reporters[0.9].pruned_after is None


def another_study(root: Path) -> Path:
    """An SQLite storage holding a study named mlp that searches another space."""
    (root / "sweep").mkdir()
    study = optuna.create_study(storage=f"sqlite:///{root / 'sweep' / 'sweep.db'}", study_name="mlp")
    study.set_user_attr("space", {"model.lr": {}})
    study.set_user_attr("model", "mlp")
    return root


def bad_space(text: str):
    def write(root: Path) -> Path:
        (root / "space.yaml").write_text(text)
        return root

    return write


CASES = [
    (
        "unknown option",
        bad_space("model.lrr: {type: uniform, low: 0.1, high: 0.2}\n"),
        (),
        "Option 'lrr' is not accepted",
    ),
    (
        "reversed range",
        bad_space("model.lr: {type: uniform, low: 0.3, high: 0.2}\n"),
        (),
        "low 0.3 must be below high 0.2",
    ),
    ("empty categorical", bad_space("model.lr: {type: categorical, choices: []}\n"), (), "non-empty list of choices"),
    ("unknown distribution", bad_space("model.lr: {type: normal, low: 0, high: 1}\n"), (), "unknown type 'normal'"),
    (
        "a range fit refuses",
        bad_space("model.dropout: {type: uniform, low: 0.0, high: 1.0}\n"),
        (),
        "restriction v>=0.0 and v<1.0",
    ),
    ("an empty space", bad_space("# nothing\n"), (), "holds no options"),
    (
        "a log range of whole numbers from 0",
        bad_space("trainer.max_epochs: {type: int, low: 0, high: 4, log: true}\n"),
        (),
        "trainer.max_epochs: `low >= 1` must hold for `log=True`",
    ),
    ("a step of 0", bad_space("model.lr: {type: uniform, low: 0, high: 1, step: 0}\n"), (), "`step > 0` must hold"),
    (
        "a whole-number step of 0",
        bad_space("trainer.max_epochs: {type: int, low: 1, high: 4, step: 0}\n"),
        (),
        "`step > 0` must hold",
    ),
    ("unknown model", lambda root: root, ("--model", "resnet"), "unknown model 'resnet'"),
    ("no trials", lambda root: root, ("--trials", "0"), "trials"),
    ("storage URL", lambda root: root, ("--storage", "nosuchdb://x/y"), "cannot open the storage nosuchdb://x/y"),
    ("storage folder", lambda root: root, ("--storage", "sqlite:////nonexistent/x.db"), "cannot open the storage"),
    ("study of another space", another_study, (), "study 'mlp' in sqlite:///"),
]


def without_lock_files(state: dict) -> dict:
    """A snapshot less the storage's lock file, which opening the storage to read the study creates."""
    return {name: entry for name, entry in state.items() if not name.endswith("sweep-lock")}


@pytest.mark.parametrize("prepare, options, fragment", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_error_line_and_exit_code_2(tmp_path, tiny_data, prepare, options, fragment, capsys):
    root = prepare(tmp_path)
    argv = sweep_args(root, tiny_data, *options)
    before = snapshot(root)
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], errors
    assert without_lock_files(snapshot(root)) == without_lock_files(before)


def test_validating_on_the_test_set_is_refused(tmp_path, tiny_data, capsys):
    with pytest.raises(SystemExit):
        main(sweep_args(tmp_path, tiny_data, fit=("--data.val_size", "0")))
    assert "--data.val_size 0 validates on the test set" in capsys.readouterr().err


@pytest.mark.parametrize("space", sorted(SPACES_DIR.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_packaged_space_names_options_fit_accepts_at_both_ends_of_their_ranges(space):
    distributions = read_space(space)
    for end in (0, -1):
        check_fit_options(
            ["fit", "--config", space.stem, *fit_words({k: ends(d)[end] for k, d in distributions.items()})]
        )


def worker(root: Path, data: Path, *options: str, fit: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen(
        cli_command(*sweep_args(root, data, *options, fit=fit)),
        cwd=REPO,
        env=cli_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_trials(root: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(root / "sweep" / "sweep.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        return db.execute("select number, state from trials order by number").fetchall()


@pytest.fixture
def postgresql_url(request) -> str:
    """The URL of a PostgreSQL server of the test's own (Debian's postgresql package, as CI installs it), on a
    Unix socket in a fresh folder, stopped and removed after; skipped where no server or driver is installed."""
    pytest.importorskip("psycopg", reason="no PostgreSQL driver: pip install 'cifar-bench[postgresql]'")
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    initdb = shutil.which("initdb") or (str(found[-1]) if found else None)
    if initdb is None:
        pytest.skip("no PostgreSQL server installed (Debian: apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="sweep-postgresql-"))
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    as_server = []
    if os.geteuid() == 0:  # the server refuses to run as root: as the package's own user
        server = pwd.getpwnam("postgres")
        os.chown(folder, server.pw_uid, server.pw_gid)
        as_server = ["runuser", "-u", "postgres", "--"]
    pg_ctl = [*as_server, str(Path(initdb).parent / "pg_ctl"), "-D", str(folder / "data")]
    subprocess.run([*as_server, initdb, "-D", folder / "data", "-A", "trust", "-U", "sweeper"], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run([*pg_ctl, "-o", f"-k {folder} -h '' -p 5439", "-l", folder / "log", "-w", "start"], check=True,
                   capture_output=True)  # fmt: skip
    request.addfinalizer(lambda: subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True))
    return f"postgresql+psycopg://sweeper@/postgres?host={folder}&port=5439"


def test_a_worker_that_loses_the_race_to_create_a_server_databases_tables_opens_them_once_the_winner_is_done(
    tmp_path, monkeypatch
):
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    from cifar_bench.sweep import storage as storage_module

    def database_error(kind, sqlstate: str, message: str):
        cause = Exception(message)
        cause.sqlstate = sqlstate  # as psycopg's errors carry PostgreSQL's code
        return kind("CREATE TABLE alembic_version", {}, cause)

    url = "postgresql+psycopg://sweeper@/postgres?host=/tmp/x"
    failures, opened = [], []

    def rdb_storage(url, **options):
        if failures:
            raise failures.pop(0)
        opened.append(url)
        return SimpleNamespace(url=url)

    monkeypatch.setattr(storage_module, "RDBStorage", rdb_storage)
    monkeypatch.setattr(storage_module.time, "sleep", lambda seconds: None)
    failures[:] = [
        database_error(ProgrammingError, "42P07", 'relation "alembic_version" already exists'),
        database_error(IntegrityError, "23505", "duplicate key value violates unique constraint"),
    ]
    assert storage_module.Storage(url, tmp_path).backend.url == url and opened == [url]

    failures[:] = [database_error(ProgrammingError, "42501", "permission denied for schema public"), None]
    with pytest.raises(CifarBenchError, match="cannot open the storage .*ProgrammingError"):
        storage_module.Storage(url, tmp_path)
    assert failures == [None]  # not retried


def test_a_turn_held_by_a_stopped_worker_is_one_error_not_an_endless_wait(tmp_path, monkeypatch):
    from filelock import FileLock

    from cifar_bench.sweep import storage as storage_module

    store = storage_module.Storage(None, tmp_path)
    monkeypatch.setattr(storage_module, "TURN_WAIT_S", 0.2)
    with FileLock(str(store.lock_file)):  # the stopped worker's
        with pytest.raises(CifarBenchError, match="sweep-lock stayed held for 0.2 s"):
            with store.turn():
                pass
    with store.turn():  # free again: taken at once
        pass


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite", "journal", "postgresql"])
def test_two_workers_on_one_storage_run_the_trials_between_them_none_twice(tmp_path, tiny_data, storage, request):
    url = {
        "sqlite": lambda: None,
        "journal": lambda: str(tmp_path / "sweep.log"),
        "postgresql": lambda: request.getfixturevalue("postgresql_url"),
    }[storage]()
    chosen = ("--storage", url) if url else ()
    workers = [worker(tmp_path, tiny_data, "--trials", "4", "--pruner", "none", *chosen) for _ in range(2)]
    for process in workers:
        _, errors = process.communicate(timeout=600)
        assert process.returncode == 0, errors[-3000:]
    if storage == "sqlite":
        assert stored_trials(tmp_path) == [(number, "COMPLETE") for number in range(4)]
    if storage == "postgresql":
        stored = optuna.load_study(study_name="mlp", storage=url).get_trials(deepcopy=False)
        assert [(trial.number, trial.state.name) for trial in stored] == [(number, "COMPLETE") for number in range(4)]
    assert sorted(path.name for path in (tmp_path / "sweep" / "mlp").iterdir()) == [f"trial{n}" for n in range(4)]
    assert trial_states(tmp_path / "sweep") == [(number, "COMPLETE") for number in range(4)]


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_a_failed_trial_that_the_rerun_replaces(tmp_path, tiny_data):
    first = worker(tmp_path, tiny_data, "--trials", "2", fit=("--trainer.max_epochs", "500"))
    wait_for(tmp_path / "sweep" / "mlp" / "trial0" / "checkpoints" / "last.ckpt", first)
    first.send_signal(signal.SIGKILL)
    first.wait()

    rerun = subprocess.run(
        cli_command(*sweep_args(tmp_path, tiny_data, "--trials", "2")),
        cwd=REPO,
        env=cli_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Trials 0 were left running by a worker that died: recorded as failed" in rerun.stdout
    assert stored_trials(tmp_path) == [(0, "FAIL"), (1, "COMPLETE"), (2, "COMPLETE")]
