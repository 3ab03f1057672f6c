"""Ships the top-level data/ folder inside the installed package, as servelab/data/.

The folder stays at the top of the repository (the product card fixes the layout);
`servelab.datafiles.data_dir()` finds it in a checkout or an editable install, and finds
this copy in a regular install. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = Path(__file__).resolve().parent / "data"


class BuildPyWithData(build_py):
    """build_py, then data/ copied recursively into the built package (not when editable:
    an editable install reads the checkout's data/ in place)."""

    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False) and DATA.is_dir():
            self.copy_tree(str(DATA), str(Path(self.build_lib) / "servelab" / "data"))


setup(cmdclass={"build_py": BuildPyWithData})
