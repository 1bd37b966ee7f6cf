"""The libraries in a relational database: SQLite by default, PostgreSQL in production."""
