"""Shipping: registry entries to and from the Hub (hub.py) and a whole before / after Space (space.py)."""
