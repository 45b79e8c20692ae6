"""Local stand-ins for the embedded default: a seat inventory and a checkout page."""
