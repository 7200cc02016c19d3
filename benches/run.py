"""``python -m benches.run``: the benchmark runner (crossmargin.bench), from a checkout."""

import sys

from crossmargin.bench import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
