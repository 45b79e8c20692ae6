"""Contract tests: consumer pacts of the Payment and Theater adapters, and their verification."""
