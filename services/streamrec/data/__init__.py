"""Public data sets for the demo and benchmarks (fetched on demand, cached)."""
