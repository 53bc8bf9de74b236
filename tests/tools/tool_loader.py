"""The scripts of tools/ as modules, for the tests of tools/: one loader instead of one per file.

Loads by path, under the script's own name, without registering it in sys.modules; a script that
imports its neighbours by bare name needs tools/ (or tools/data/) on sys.path first, as the caller
arranges.
"""
import importlib.util
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[2] / 'tools'


def load_tool(relpath: str) -> ModuleType:
    """Execute ``tools/<relpath>`` (e.g. ``'data/generate_shapes.py'``) and return the module."""
    path = TOOLS / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
