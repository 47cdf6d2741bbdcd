"""Adapters: the only modules that do I/O (Kafka, the local event log, snapshot stores)."""
