"""Experiments: A/B tests between scoring configurations over the same snapshot.

``spec.py`` (an experiment and its arms, validated naming the field), ``assign.py`` (the
salted hash that puts a user in an arm, the same on every worker and replica),
``intervals.py`` (Wilson and Newcombe intervals, the mean with its interval) and
``results.py`` (per-arm counts and their comparison). Pure: no I/O, no clock of its own.
"""
