"""Inputs: user files, their cells, and the embedded sample libraries."""
