"""What a run records of its code: the commit, marked changed only where the code itself changed."""

from __future__ import annotations

import subprocess

from cifar_bench import environment


def git(folder, *words: str) -> str:
    identity = ("-c", "user.name=test", "-c", "user.email=test@example.org")
    return subprocess.run(["git", *identity, *words], cwd=folder, check=True, capture_output=True, text=True).stdout


def test_a_run_is_marked_changed_by_edits_to_its_code_not_by_evidence_written_beside_it(tmp_path, monkeypatch):
    for name in ("package/model.py", "configs/model.yaml", "results/mlp/metrics.json", "docs/results.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("first\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    head = git(tmp_path, "rev-parse", "HEAD").strip()
    monkeypatch.setattr(environment, "SOURCE", tmp_path / "package")
    monkeypatch.setattr(environment, "CODE", (tmp_path / "package", tmp_path / "configs"))

    for name in ("results/mlp/metrics.json", "docs/results.md"):  # a study's evidence, a doc edited meanwhile
        (tmp_path / name).write_text("second\n")
    assert environment.commit() == head
    for name in ("configs/model.yaml", "package/model.py"):
        (tmp_path / name).write_text("second\n")
        assert environment.commit() == f"{head}+changes"
        git(tmp_path, "checkout", "-q", "--", name)
    assert environment.commit() == head
    (tmp_path / "package" / "model.py").write_text("staged\n")
    git(tmp_path, "add", "package/model.py")
    assert environment.commit() == f"{head}+changes"  # staged is changed too
