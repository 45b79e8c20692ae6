"""Faithful stand-ins of the platform's Payment, Theater and Eureka services, for tests and the compose stack."""
