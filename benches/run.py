"""``python -m benches.run``: the benchmark runner (benches.runner), from a checkout."""

import sys

from benches.runner import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
