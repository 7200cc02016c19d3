"""Benchmarks of crossmargin: pytest-benchmark suites and the one-run ratio runner.

``python -m benches.run`` measures the engine against the vectorised NumPy baseline
(:mod:`crossmargin.numpy_engine`), the pure-Python reference and the memory-bandwidth floor,
and writes ``benches/results/*.json``. ``pytest benches --benchmark-enable`` runs the suites.
"""
