"""Placements: named serving configurations with rules (issue 28, docs/placements.md).

``spec`` parses them, ``expressions`` compiles their CEL, ``masks`` keeps each placement's
per-item arrays current, ``rerank`` makes a list from one score vector, ``impressions``
remembers what each user was shown (rotation, exploration counts). No I/O here.
"""
