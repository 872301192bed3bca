"""The store: SQLAlchemy 2 (Core) over SQLite (WAL) or PostgreSQL, one schema, one code path.

Only this package imports SQLAlchemy. Migrations are Alembic's, applied at start-up.
"""
