"""Metadata and dependencies are in setup.cfg; here the one thing it cannot say.

The configs stay in the repository's top-level configs/ (``--config configs/cnn.yaml`` in a checkout)
and ship as the package data ``cifar_bench/configs/*.yaml``: package_dir maps the folder into the
package, so a wheel or ``pip install .`` carries them and no copy is kept in the source tree. The report's
Jinja2 templates ship beside their module as ``cifar_bench/report/templates/*.j2``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["cifar_bench", "cifar_bench.*"]), "cifar_bench.configs"],
    package_dir={"cifar_bench.configs": "configs"},
    package_data={"cifar_bench.configs": ["*.yaml"], "cifar_bench.report": ["templates/*.j2"]},
)
