"""The pure booking domain: the aggregate, its state machine, money and domain events."""
