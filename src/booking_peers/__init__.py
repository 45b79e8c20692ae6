"""Stand-ins of the platform's Payment, Theater and Eureka services (tests, compose)."""
