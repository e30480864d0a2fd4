-- The base population of a size template: :n contacts, each with one enrollment that is NOT due
-- (next_run_at spread over the next 30 days), half on bench-waits and half on bench-emails, so the
-- due index and the tables have the size of the cell while the work of a cell is added per run
-- (add_due.sql). Set-based: two INSERT … SELECT generate_series statements.
-- Usage: psql -v n=10000 -f seed_base.sql   (after `seqd migrate` and `seqd sequence apply`)
\set ON_ERROR_STOP on

CREATE SCHEMA IF NOT EXISTS bench;
-- The due time each measured enrollment was given, so lag can be computed after the daemon has
-- overwritten next_run_at.
CREATE TABLE IF NOT EXISTS bench.due (
    enrollment_id bigint PRIMARY KEY,
    due_at        timestamptz NOT NULL,
    tag           text NOT NULL
);

INSERT INTO seqd.contacts (email, first_name, last_name, time_zone)
SELECT 'base' || g || '@bench.example', 'Ann', 'Base', 'UTC'
FROM generate_series(1, :n) AS g;

SET seqd.event = 'enroll';
SET seqd.actor = 'bench-seed';
INSERT INTO seqd.enrollments (contact_id, sequence_id, sequence_version, current_step_index, next_run_at)
SELECT c.id, v.sequence_id, v.version,
       CASE WHEN s.name = 'bench-waits' THEN 1 ELSE 2 END,
       now() + interval '1 day' + (c.id * 7919 % 2592000) * interval '1 second'
FROM seqd.contacts c
JOIN seqd.sequences s ON s.name = CASE WHEN c.id % 2 = 0 THEN 'bench-waits' ELSE 'bench-emails' END
JOIN LATERAL (SELECT sequence_id, max(version) AS version FROM seqd.sequence_versions
              WHERE sequence_id = s.id GROUP BY sequence_id) v ON true
WHERE c.email LIKE 'base%'
ORDER BY c.id;

VACUUM ANALYZE;
