"""Test fixtures: kafka."""
