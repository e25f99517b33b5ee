"""The eventsourcing library's PostgreSQL factory, connecting as the ledger does.

Apart from ledger.postgres so that commands which never use the library (appends,
queries) do not import it and its connection pool.
"""

from __future__ import annotations

from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment, EnvType

# The library's setting for each connection part.
_PARTS = {
    "host": PostgresFactory.POSTGRES_HOST,
    "port": PostgresFactory.POSTGRES_PORT,
    "user": PostgresFactory.POSTGRES_USER,
    "dbname": PostgresFactory.POSTGRES_DBNAME,
}


class LibpqFactory(PostgresFactory):
    """A part the store URL leaves out is left out of the library's connections too, so
    libpq takes it from PGHOST, PGUSER, a service file or its defaults, as for the
    ledger's own: the library requires each setting and passed '' (or port 5432), which
    libpq takes as given (a URL without a user connected as no one, not as PGUSER)."""

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        kwargs = self.datastore.pool.kwargs
        assert isinstance(kwargs, dict)  # the library's own, not yet used: the pool is shut
        for part, setting in _PARTS.items():
            if not self.env.get(setting):
                del kwargs[part]
