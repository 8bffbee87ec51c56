"""Support code for tests and benchmarks: tiny random models in the real on-disk layouts."""
