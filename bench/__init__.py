"""Benchmarks for the local platform: each module is one command that measures, writes
bench/results/<name>-<time>.json and prints a markdown table (see BENCHMARKS.md).

Bench code sits outside the package's layers: it drives the `isthmus` CLI, and reads
the daemon's API socket only where a CLI start-up would blur a timing.
"""
