"""A worker's placements (docs/placements.md): the watched set (``book.py``), the impressions
read back from their topic (``feed.py``) and the glue a request uses (``placer.py``)."""
