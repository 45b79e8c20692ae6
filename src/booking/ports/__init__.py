"""Ports: the Protocols the use cases depend on, one role per module."""
