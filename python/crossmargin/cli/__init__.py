"""The ``crossmargin`` console command (typer): batch runs for a back office.

It needs the ``cli`` extra (typer, rich, pandas, matplotlib): ``pip install
'crossmargin[cli]'``. Without typer or rich, the command prints that in one line and exits 2.
"""

import sys
from typing import Any

MISSING = "crossmargin's command line needs its extra: pip install 'crossmargin[cli]'"

try:
    from crossmargin.cli.app import app, main
except ImportError as e:  # only typer / rich (and click, typer's base) are guarded
    if (e.name or "").partition(".")[0] not in ("typer", "rich", "click"):
        raise
    app: Any = None  # type: ignore[no-redef]

    def main(argv: list[str] | None = None) -> None:  # type: ignore[misc]
        print(MISSING, file=sys.stderr)
        sys.exit(2)


__all__ = ["MISSING", "app", "main"]
