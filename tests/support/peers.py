"""Test fixtures: peers."""
