"""The item catalogue: records, and the filters that turn them into masks.
"""
