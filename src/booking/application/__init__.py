"""Use cases: the booking saga orchestrated through ports."""
