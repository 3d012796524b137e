"""The wheel's package list names every package folder (one left out is missing from the
wheel: indexer/formats/ once was, and a built cite could not index anything)."""

import tomllib

from tests.helpers import ROOT


def test_every_package_folder_is_in_the_wheel():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, folders = set(setuptools["packages"]), setuptools["package-dir"]
    found = set()
    for package, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - found <= {"cite.seeds"}  # data only, no __init__.py
