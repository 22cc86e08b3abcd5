"""Every public name of the library has a docstring, and docs/api.md covers each one."""

import inspect
import os

import pybpf
from pybpf import api

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _public_members(obj):
    for name, member in vars(obj).items():
        if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, property)):
            yield name, member


def test_every_public_name_has_a_docstring():
    missing = []
    for name in pybpf.__all__:
        obj = getattr(pybpf, name)
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj) and obj.__module__ == api.__name__:
            missing += [f"{name}.{m}" for m, member in _public_members(obj)
                        if not (member.__doc__ or "").strip()]
    assert missing == []


def test_the_reference_page_names_every_public_name_of_the_api():
    with open(os.path.join(ROOT, "docs", "api.md")) as f:
        reference = f.read()
    names = [n for n in pybpf.__all__ if n not in ("Session", "make_output", "compile_to_ir")]
    assert [n for n in names if f"`{n}" not in reference and f"pybpf.{n}" not in reference] == []
    for name in ("Program", "Trace", "MapView", "Histogram", "Stats"):
        cls = getattr(pybpf, name)
        assert [m for m, _ in _public_members(cls) if f".{m}" not in reference] == [], name


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_pybpf_error_is_a_documented_subclass_of_pybpf_error():
    import importlib
    import pkgutil

    import pybpf.backend
    import pybpf.runtime
    for package in (pybpf, pybpf.runtime, pybpf.backend):      # every error class defined
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    with open(os.path.join(ROOT, "docs", "api.md")) as f:
        reference = f.read()
    errors = {cls.__name__ for cls in _subclasses(pybpf.Error)}
    assert {"CompileError", "VerifierError", "ProbeUnavailableError"} <= errors
    assert sorted(name for name in errors if f"`{name}`" not in reference
                  and f"`pybpf.{name}`" not in reference) == []
