"""Offline, prequential (test-then-train) evaluation of recommendation quality on a stream."""
