"""The sliding window: events in, the user x item matrix and its contents out.
"""
