"""Django's MySQL backend, also for a MariaDB Galera cluster: several nodes, tried in turn.

For every MySQL/MariaDB database; health checks are skipped on a connection busy serving
requests (``cdp_site.backends.health``). The cluster's part acts only when
``CDP_DATABASE_HOSTS`` or ``CDP_WSREP_SYNC_WAIT`` is set; a single server is otherwise served as
Django's own backend serves it.

- ``HOSTS`` (from ``CDP_DATABASE_HOSTS``, ``host:port,host:port``): each new connection (the
  first, and every reconnect after a node went away) tries the hosts in order and takes the
  first that answers and is a usable cluster member (``wsrep_ready``: a node that is joining,
  or cut off from the majority, accepts connections but refuses queries with 1047). Put the
  app server's own node first. Without it, ``HOST``/``PORT`` of ``DATABASE_URL`` (a proxy such
  as HAProxy, say) is the only one.
- ``WSREP_SYNC_WAIT`` (``CDP_WSREP_SYNC_WAIT``, default 1 with several hosts): set as the
  session's ``wsrep_sync_wait`` on a server that runs wsrep, so a read waits until the node
  has applied every write the cluster committed before it: a user who wrote through one node
  and reads through another (an import's status, a report) sees the write. Servers without
  wsrep (plain MariaDB, MySQL) are left alone.
"""

from __future__ import annotations

import logging

from django.db.backends.mysql import base

from ..health import RecentlyCheckedConnection

logger = logging.getLogger(__name__)

ER_UNKNOWN_SYSTEM_VARIABLE = 1193  # MySQL (no wsrep at all)
ER_UNKNOWN_COM_ERROR = 1047  # Galera: "WSREP has not yet prepared node for application use"


class DatabaseWrapper(RecentlyCheckedConnection, base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        if not self.settings_dict.get("HOSTS") and not self.settings_dict.get("WSREP_SYNC_WAIT"):
            return super().get_new_connection(conn_params)  # one server, no cluster
        hosts = self.settings_dict.get("HOSTS") or [(conn_params.get("host"), conn_params.get("port"))]
        failure: Exception | None = None
        for host, port in hosts:
            params = {**conn_params, "host": host}
            if port:
                params["port"] = int(port)
            try:
                connection = super().get_new_connection(params)
            except base.Database.OperationalError as exc:
                logger.warning("database %s:%s unreachable (%s); trying the next host", host, port, exc)
                failure = exc
                continue
            try:
                if self._prepare_cluster_session(connection):
                    return connection
            except base.Database.OperationalError as exc:
                failure = exc
            else:
                failure = base.Database.OperationalError(
                    ER_UNKNOWN_COM_ERROR, f"{host}:{port} is not a ready cluster member (wsrep_ready is OFF)"
                )
            logger.warning("database %s:%s not usable (%s); trying the next host", host, port, failure)
            connection.close()
        raise failure

    def _prepare_cluster_session(self, connection) -> bool:
        """Whether the server can serve (a ready node, or no wsrep); sets wsrep_sync_wait if so."""
        cursor = connection.cursor()
        try:
            try:
                cursor.execute("SELECT @@wsrep_on")
            except base.Database.DatabaseError as exc:
                if exc.args and exc.args[0] == ER_UNKNOWN_SYSTEM_VARIABLE:
                    return True
                raise
            if not cursor.fetchone()[0]:
                return True
            cursor.execute("SHOW STATUS LIKE 'wsrep_ready'")
            row = cursor.fetchone()
            if row is None or row[1] != "ON":
                return False
            sync_wait = int(self.settings_dict.get("WSREP_SYNC_WAIT") or 0)
            if sync_wait:
                cursor.execute("SET SESSION wsrep_sync_wait = %s", [sync_wait])
            return True
        finally:
            cursor.close()
