"""The distribution's metadata: one version, the license it declares, shipped with it."""

from __future__ import annotations

from importlib.metadata import metadata, version

import alembic_cleandb
from conftest import ROOT


def test_the_version_is_written_once() -> None:
    assert version("alembic-cleandb") == alembic_cleandb.__version__
    project = (ROOT / "pyproject.toml").read_text().split("[project]\n")[1].split("\n[")[0]
    assert "\nversion =" not in project and 'dynamic = ["version"]' in project


def test_the_declared_license_is_the_license_file() -> None:
    meta = metadata("alembic-cleandb")
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_classifiers_name_the_python_versions_and_pytest() -> None:
    classifiers = set(metadata("alembic-cleandb").get_all("Classifier") or [])
    assert "Framework :: Pytest" in classifiers
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in range(9, 14)} <= classifiers
