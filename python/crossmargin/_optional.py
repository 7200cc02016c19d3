"""Optional dependencies, imported where they are used: the library itself needs numpy and
pyarrow only. pandas, typer, rich and matplotlib come with the ``cli`` extra
(``pip install 'crossmargin[cli]'``), polars on its own."""

from __future__ import annotations

import importlib
from typing import Any

from crossmargin.exceptions import OptionalDependencyError

#: The extra that installs each optional package (None: install the package itself).
EXTRAS: dict[str, str | None] = {
    "pandas": "cli",
    "matplotlib": "cli",
    "typer": "cli",
    "rich": "cli",
    "polars": None,
    "dask": "distributed",
    "distributed": "distributed",
}


def require(module: str, what: str) -> Any:
    """``module`` imported, or an :class:`OptionalDependencyError` (an ``ImportError``)
    saying that ``what`` needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        package = module.split(".")[0]
        extra = EXTRAS.get(package)
        how = (
            f"pip install 'crossmargin[{extra}]' (or pip install {package})"
            if extra
            else f"pip install {package}"
        )
        raise OptionalDependencyError(
            f"{what} needs {package}, an optional dependency: {how}",
            package=package,
            extra=extra,
        ) from e


__all__ = ["EXTRAS", "require"]
