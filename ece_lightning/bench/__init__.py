"""Performance benchmarks: ratios measured in one process (absolute times only as context)."""
