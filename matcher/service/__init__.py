"""The service: one request in, one response body out, shared by the HTTP API and the command line."""
