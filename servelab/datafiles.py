"""Where servelab's data files are: the paraphrase set, sample traces and datasets, and
whatever else `data/` holds (docs/architecture.md, "Layout").

In a checkout (and an editable install) that is the repository's top-level `data/`; a
regular install carries a copy inside the package, `servelab/data/` (setup.py puts it
there). Ground floor: standard library only, usable by every package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGED = Path(__file__).resolve().parent / "data"
_CHECKOUT = Path(__file__).resolve().parents[1] / "data"


def data_dir() -> Path:
    """The data folder of this servelab: the installed copy, else the checkout's."""
    return _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


def data_path(*parts: str) -> Path:
    """A file or folder under the data folder, e.g. data_path("traces", "x.csv")."""
    return data_dir().joinpath(*parts)
