// Postgres: the small, safe Swift layer over libpq that the rest of seqd uses for every database
// call. It owns the C pointers (`PGconn`, `PGresult`, `PGcancel`, each freed exactly once), binds
// every parameter, turns server errors into `PostgresError` with SQLSTATE, confines each connection
// to one thread (`ConfinedConnection`), and waits for NOTIFY on the socket (`NotificationListener`).
// It knows nothing about seqd's schema.
