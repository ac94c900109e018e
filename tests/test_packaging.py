"""The package installs under one name: probgen, with the CLI as probgen.cli."""

import importlib.util
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {"probgen"} | {
        "probgen." + ".".join(p.relative_to(ROOT / "probgen").parts)
        for p in (ROOT / "probgen").rglob("*")
        if p.is_dir() and (p / "__init__.py").exists()
    }
    assert found | {"probgen.cli"} == listed


def test_cli_is_importable_only_under_probgen():
    assert importlib.util.find_spec("probgen.cli.main") is not None


def test_shipped_weights_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["probgen.metrics"]
    weights = list((ROOT / "probgen" / "metrics" / "weights").glob("*.safetensors"))
    assert weights and all(any(w.match(p.split("/")[-1]) for p in patterns) for w in weights)
