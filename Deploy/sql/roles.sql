-- seqd's database roles, least privilege. Run with psql as a superuser:
--
--   psql -v database=seqd -v runtime_password="'…'" -v owner_password="'…'" -v readonly_password="'…'" \
--        -f Deploy/sql/roles.sql
--
-- Part 1 creates the roles (cluster-wide, idempotent). Part 2 grants on one database; run it again
-- after every `seqd migrate`, which may add tables (default privileges below cover objects the
-- owner creates later, this keeps it explicit).
--
--   seqd_owner     owns schema seqd and runs `seqd migrate` (DDL). Nothing else uses it.
--   seqd_runtime   the daemon, the CLI and the HTTP listener: DML on seqd's tables, no DDL, and
--                  pg_read_all_stats so it can see the age of other sessions' transactions.
--   seqd_readonly  operators and dashboards: SELECT only.
--
-- TLS: connect with sslmode=verify-full and sslrootcert, e.g.
--   DATABASE_URL='postgresql://seqd_runtime@db.internal/seqd?sslmode=verify-full&sslrootcert=/etc/seqd/db-ca.pem'
-- verify-full checks the server certificate against the CA *and* the host name; require alone
-- encrypts but accepts any server.

\set ON_ERROR_STOP on

-- Part 1: roles.
SELECT format('CREATE ROLE %I LOGIN', r) FROM unnest(ARRAY['seqd_owner', 'seqd_runtime', 'seqd_readonly']) AS r
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
\if :{?owner_password}
ALTER ROLE seqd_owner PASSWORD :owner_password;
\endif
\if :{?runtime_password}
ALTER ROLE seqd_runtime PASSWORD :runtime_password;
\endif
\if :{?readonly_password}
ALTER ROLE seqd_readonly PASSWORD :readonly_password;
\endif
GRANT pg_read_all_stats TO seqd_runtime;

-- Part 2: privileges on the database.
\if :{?database}
\else
\set database seqd
\endif
GRANT CONNECT ON DATABASE :"database" TO seqd_owner, seqd_runtime, seqd_readonly;
GRANT CREATE ON DATABASE :"database" TO seqd_owner;
CREATE SCHEMA IF NOT EXISTS seqd AUTHORIZATION seqd_owner;
GRANT USAGE ON SCHEMA seqd TO seqd_runtime, seqd_readonly;

-- Runtime: read and write rows, never the schema, the migration history or the transition table.
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA seqd TO seqd_runtime;
-- Before the first `seqd migrate` these tables do not exist yet; the run after it revokes.
SELECT format('REVOKE INSERT, UPDATE ON %s FROM seqd_runtime', t)
FROM unnest(ARRAY['seqd.schema_migrations', 'seqd.enrollment_transitions']) AS t
WHERE to_regclass(t) IS NOT NULL \gexec
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA seqd TO seqd_runtime;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA seqd TO seqd_runtime;
-- Readonly: the tables and the ops views.
GRANT SELECT ON ALL TABLES IN SCHEMA seqd TO seqd_readonly;

-- Objects that later migrations create (as seqd_owner) get the same grants.
ALTER DEFAULT PRIVILEGES FOR ROLE seqd_owner IN SCHEMA seqd GRANT SELECT, INSERT, UPDATE ON TABLES TO seqd_runtime;
ALTER DEFAULT PRIVILEGES FOR ROLE seqd_owner IN SCHEMA seqd GRANT USAGE, SELECT ON SEQUENCES TO seqd_runtime;
ALTER DEFAULT PRIVILEGES FOR ROLE seqd_owner IN SCHEMA seqd GRANT SELECT ON TABLES TO seqd_readonly;
