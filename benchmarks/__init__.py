"""Benchmarks for pat-middleware: run ``python -m benchmarks`` (see BENCHMARKS.md)."""
