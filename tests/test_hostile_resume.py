"""Issue 33's attacks by a handed-over run folder or working folder on fit and study, each performed:
the working folder on a child's import path, a checkpoint's callback state choosing what is deleted,
links in a run folder written through, a checkpoint choosing paths, a planted ``last*.ckpt``."""

from __future__ import annotations

from cifar_bench import study


def test_a_package_planted_in_the_working_folder_is_not_run_by_studys_children(tmp_path, monkeypatch):
    """``python -m cifar_bench`` puts the working folder first on the import path: a ``cifar_bench/`` planted
    there would run in place of the installed package. The study's children start with ``-P``."""
    planted = tmp_path / "cifar_bench"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    (planted / "__main__.py").write_text("open('planted-code-ran', 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    assert study.cifar_bench("--help") == 0
    assert not (tmp_path / "planted-code-ran").exists()
