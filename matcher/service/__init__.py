"""The service: one request in, one response body out, and who may do what."""
