"""Benchmark suite: a raw-asyncio reference server, a load client and a runner.

Run ``python -m benchmarks.run --help``; see ``benchmarks/README.md``.
"""
