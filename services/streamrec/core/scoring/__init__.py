"""Scoring: the Scorer protocol and its models (ALS fold-in, item-item), the blend of their scores,
ranking over arrays, and fitting.
"""
