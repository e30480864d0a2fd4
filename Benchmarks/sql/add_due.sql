-- Adds the work of one run: :count new contacts, each enrolled in :'sequence' at step :step, the
-- i-th (0-based) due at now() + :offset_ms + i * :interval_ms milliseconds; records each due time in
-- bench.due under :'tag'. A negative offset makes them due already (throughput cells); a positive
-- one schedules them while the daemon runs (lag cell). Then ANALYZE so plans see the new rows, and
-- NOTIFY seqd_wakeup as `seqd enroll` does, so every running replica starts at once.
-- Usage: psql -v count=4000 -v sequence=bench-waits -v step=1 -v offset_ms=-60000 -v interval_ms=1 -v tag=run1 -f add_due.sql
\set ON_ERROR_STOP on

SET seqd.event = 'enroll';
SET seqd.actor = 'bench-seed';
WITH v AS (
    SELECT s.id AS sequence_id, max(sv.version) AS version
    FROM seqd.sequences s JOIN seqd.sequence_versions sv ON sv.sequence_id = s.id
    WHERE s.name = :'sequence' GROUP BY s.id
), c AS (
    INSERT INTO seqd.contacts (email, first_name, last_name, time_zone)
    SELECT :'tag' || '-' || g || '@bench.example', 'Ann', 'Due', 'UTC'
    FROM generate_series(1, :count) AS g
    RETURNING id
), e AS (
    INSERT INTO seqd.enrollments (contact_id, sequence_id, sequence_version, current_step_index, next_run_at)
    SELECT c.id, v.sequence_id, v.version, :step,
           now() + make_interval(secs => (:offset_ms + (row_number() OVER (ORDER BY c.id) - 1) * :interval_ms) / 1000.0)
    FROM c CROSS JOIN v
    RETURNING id, next_run_at
)
INSERT INTO bench.due (enrollment_id, due_at, tag) SELECT id, next_run_at, :'tag' FROM e;

ANALYZE seqd.contacts, seqd.enrollments;
SELECT pg_notify('seqd_wakeup', '') \g /dev/null
