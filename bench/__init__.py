"""Benchmarks: `python -m bench.load` (API + worker load) and `bench/classify.py` (local classifier)."""
