"""
Measurement and stress programs run with ``make crash`` and ``make
bench-storage``: the SIGKILL crash-safety harness and the storage
benchmark.  Each is a script and an importable module (the tests run a
small crash schedule through L{benchmarks.crash_harness}).
"""
