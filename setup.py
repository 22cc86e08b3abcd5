"""pyproject.toml describes the package; this adds one build step: the parser's tables, built from
the grammar into the built package (grammar/tables.py says why), so an installed pybpf never builds
them at run time. An editable install has none: it builds them once into the cache."""

import importlib.util
import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithParserTables(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grammar", "tables.py")
        spec = importlib.util.spec_from_file_location("pybpf_grammar_tables", path)
        tables = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tables)
        folder = os.path.join(self.build_lib, "pybpf", "grammar")
        os.makedirs(folder, exist_ok=True)
        tables.write_shipped(folder)


setup(cmdclass={"build_py": BuildWithParserTables})
