"""matcher: match the needs of social-work organisations to experts, resources and projects."""

__version__ = "0.1.0"
