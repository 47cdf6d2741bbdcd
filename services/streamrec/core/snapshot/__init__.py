"""Snapshots as data: layout, manifest and training status (the files are
adapters/snapshotfiles.py).
"""
