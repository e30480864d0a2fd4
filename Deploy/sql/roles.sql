-- seqd's database roles, least privilege. Run with psql as a superuser:
--
--   psql -v database=seqd -v runtime_password="'…'" -v owner_password="'…'" -v readonly_password="'…'" \
--        -f Deploy/sql/roles.sql
--
-- Part 1 creates the roles (cluster-wide, idempotent). Part 2 grants on one database. Run it
-- before the first `seqd migrate` (it creates schema seqd for the owner) and again after every
-- `seqd migrate`, which may add tables: the table rules below apply to tables that exist.
--
--   seqd_owner     owns schema seqd and runs `seqd migrate` (DDL), `seqd prune` and
--                  `seqd suppression remove`. Nothing else uses it.
--   seqd_runtime   the daemon, the CLI and the HTTP listener: rows of seqd's tables, no DDL;
--                  enrollment_events, delivery_attempts, signals, suppressions and events append-only;
--                  reads the unsubscribe secret (it signs and verifies); pg_read_all_stats so it
--                  can see the age of other sessions' transactions.
--   seqd_readonly  operators and dashboards: SELECT on the tables and views, except
--                  seqd.settings (the unsubscribe secret).
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
-- Nobody creates objects in public: a function or table there could shadow a name a session
-- resolves through its search_path (seqd's own functions pin theirs).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS seqd AUTHORIZATION seqd_owner;
GRANT USAGE ON SCHEMA seqd TO seqd_runtime, seqd_readonly;

-- Objects that migrations create (as seqd_owner) get the runtime's and readonly's table grants at
-- once; the rules below for particular tables are applied when this file runs after a migrate.
ALTER DEFAULT PRIVILEGES FOR ROLE seqd_owner IN SCHEMA seqd GRANT SELECT, INSERT, UPDATE ON TABLES TO seqd_runtime;
ALTER DEFAULT PRIVILEGES FOR ROLE seqd_owner IN SCHEMA seqd GRANT USAGE, SELECT ON SEQUENCES TO seqd_runtime;
ALTER DEFAULT PRIVILEGES FOR ROLE seqd_owner IN SCHEMA seqd GRANT SELECT ON TABLES TO seqd_readonly;
ALTER DEFAULT PRIVILEGES FOR ROLE seqd_owner IN SCHEMA seqd REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE seqd_owner IN SCHEMA seqd GRANT EXECUTE ON FUNCTIONS TO seqd_runtime;

-- On a database not migrated yet (install step 1) the tables do not exist: stop here, and run
-- this file again after `seqd migrate`.
SELECT to_regclass('seqd.schema_migrations') IS NOT NULL AS seqd_migrated \gset
\if :seqd_migrated

-- Runtime: read and write rows, never the schema, the migration history or the transition table.
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA seqd TO seqd_runtime;
REVOKE INSERT, UPDATE ON seqd.schema_migrations, seqd.enrollment_transitions FROM seqd_runtime;
-- Append-only for the runtime: the audit trail, signals, the suppression list (removal is the
-- owner's `seqd suppression remove`), and attempts — of which only the columns a late outcome
-- fills in may change (migration 0006's trigger refuses rows already final).
REVOKE UPDATE, DELETE, TRUNCATE ON seqd.enrollment_events, seqd.signals, seqd.suppressions, seqd.delivery_attempts
    FROM seqd_runtime;
-- Contact events (migration 0014) are append-only too: a recorded event is evidence, and its key
-- is what refuses a retried one. `seqd prune` (the owner) removes old ones. On a schema before
-- 0014 the table does not exist yet.
SELECT to_regclass('seqd.events') IS NOT NULL AS seqd_has_events \gset
\if :seqd_has_events
REVOKE UPDATE, DELETE, TRUNCATE ON seqd.events FROM seqd_runtime;
\endif
GRANT UPDATE (finished_at, outcome, reply) ON seqd.delivery_attempts TO seqd_runtime;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA seqd TO seqd_runtime;
-- Functions: only the runtime role (and the owner) may call them; erase_contact_history is
-- SECURITY DEFINER and must never be PUBLIC's.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA seqd FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA seqd TO seqd_runtime;

-- Readonly: the tables and the ops views, but not seqd.settings, which holds the unsubscribe
-- secret (whoever reads it can mint unsubscribe links and Message-IDs for every contact). The
-- views are read with their owner's rights, so they still show the send switch.
GRANT SELECT ON ALL TABLES IN SCHEMA seqd TO seqd_readonly;
REVOKE SELECT ON seqd.settings FROM seqd_readonly;
-- Functions the ops views call run with the reader's rights: step_funnel needs its counts.
GRANT EXECUTE ON FUNCTION seqd.is_suppressed(text), seqd.address_hash(text), seqd.step_funnel_counts(bigint) TO seqd_readonly;
-- ... and step_results (migration 0015) its function, which `seqd report` calls.
SELECT to_regprocedure('seqd.step_results(bigint, timestamptz)') IS NOT NULL AS seqd_has_step_results \gset
\if :seqd_has_step_results
GRANT EXECUTE ON FUNCTION seqd.step_results(bigint, timestamptz) TO seqd_readonly;
\endif

\endif
