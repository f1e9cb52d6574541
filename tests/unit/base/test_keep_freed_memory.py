"""Every command's mallopt call does nothing where the C library is not glibc."""

import pytest

from cifar_bench import cli


class LibraryWithoutMallopt:
    def __getattr__(self, name: str):
        raise AttributeError(f"function {name!r} not found")


def refuse_to_load(name: str):
    raise OSError(f"{name}: cannot open shared object file")


@pytest.mark.parametrize("library", [refuse_to_load, lambda name: LibraryWithoutMallopt()], ids=["none", "no mallopt"])
def test_without_glibcs_mallopt_nothing_is_done(monkeypatch, library):
    monkeypatch.setattr(cli.ctypes, "CDLL", library)
    cli.keep_freed_memory()
