"""Alembic migrations for the store server and the embedded backend (one history for both)."""
