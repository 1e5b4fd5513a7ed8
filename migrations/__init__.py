"""Alembic migrations of the session store (run with ``sshtrail db upgrade``)."""
