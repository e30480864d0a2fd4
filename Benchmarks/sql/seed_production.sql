-- The production-size cell's database: :n contacts and :n enrollments with a year of history,
-- built set-based (one INSERT … SELECT generate_series per table) after `seqd migrate` and the
-- apply of sequences/production-a.yaml and production-b-v1.yaml (then -v2.yaml, unused by the seed).
--
-- Each enrollment g (1..n) is in prod-onboarding when g % 5 = 0 (20%), else in prod-newsletter,
-- pinned to version 1. Steps: 0 welcome (email), 1 wait, 2 tips (email), 3 wait, 4 last (email),
-- 5 wait, 6 the end. By r = (g / 5 * 7919 + g % 5 * 37) % 100 (each residue in each sequence):
--   0-39 completed (step 6, three emails sent)      40-44 replied     45-47 opted_out
--   48-49 bounced (finished mid-sequence)           50-94 active (waiting at step 1, 3 or 5;
--   one in 97 awaiting a delivery whose retry is due tomorrow)        95-97 paused   98-99 failed
-- History, consistent with what the daemon writes (`seqd check` finds nothing): an `enroll` event,
-- one event to the current step, and one to the final status if it is not active; one delivery per
-- email passed (sent, one `sent` attempt) and the failed or pending one at the current step; a
-- suppression for each opted-out or bounced address. Enrollments started over the last year, so the
-- finished ones of the first half are past prune's default horizon (180 days).
-- Triggers are off while seeding (session_replication_role = replica): the events are written here.
\set ON_ERROR_STOP on
SET session_replication_role = replica;
SET synchronous_commit = off;

CREATE TEMP TABLE plan AS
SELECT g AS id, (g / 5 * 7919 + g % 5 * 37) % 100 AS r,
       CASE WHEN g % 5 = 0 THEN 'prod-onboarding' ELSE 'prod-newsletter' END AS sequence,
       now() - (g * 104729 % 365) * interval '1 day' - (g % 86400) * interval '1 second' AS started
FROM generate_series(1::bigint, :n) AS g;

CREATE TEMP TABLE shaped AS
SELECT p.id, p.sequence, p.started,
       st.status::seqd.enrollment_status AS status,
       CASE WHEN st.status = 'completed' THEN 6
            WHEN st.status = 'failed' OR (st.status = 'active' AND p.id % 97 = 0) THEN 2 * (p.id % 3)
            ELSE 1 + 2 * (p.id % 3) END AS step
FROM plan p
CROSS JOIN LATERAL (SELECT CASE WHEN p.r < 40 THEN 'completed' WHEN p.r < 45 THEN 'replied'
                                WHEN p.r < 48 THEN 'opted_out' WHEN p.r < 50 THEN 'bounced'
                                WHEN p.r < 95 THEN 'active' WHEN p.r < 98 THEN 'paused' ELSE 'failed' END) AS st(status);

INSERT INTO seqd.contacts (id, email, first_name, last_name, time_zone, attributes, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT id, 'p' || id || '@prod.example', 'Ann', 'Prod', 'UTC', jsonb_build_object('plan', CASE WHEN id % 3 = 0 THEN 'pro' ELSE 'free' END),
       started, started
FROM shaped;
SELECT FROM setval(pg_get_serial_sequence('seqd.contacts', 'id'), :n);

INSERT INTO seqd.enrollments (id, contact_id, sequence_id, sequence_version, status, current_step_index,
                              next_run_at, remaining_wait, attempts, last_error, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT x.id, x.id, s.id, 1, x.status, x.step,
       CASE WHEN x.status = 'active' AND x.step % 2 = 1
            THEN now() + interval '1 hour' + (x.id * 7 % 432000) * interval '1 second' END,
       CASE WHEN x.status = 'paused' THEN interval '1 day' END,
       0,
       CASE WHEN x.status = 'failed' THEN 'delivery failed: 550 5.7.1 message refused' END,
       x.started,
       CASE WHEN x.status IN ('active', 'paused', 'failed') THEN now() - (x.id % 5) * interval '1 hour'
            ELSE x.started + interval '7 days' END
FROM shaped x JOIN seqd.sequences s ON s.name = x.sequence;
SELECT FROM setval(pg_get_serial_sequence('seqd.enrollments', 'id'), :n);

-- The audit trail: enroll, the way to the current step, the final status.
INSERT INTO seqd.enrollment_events (enrollment_id, event, from_status, to_status, from_step, to_step, actor, at)
SELECT x.id, 'enroll', NULL::seqd.enrollment_status, 'active'::seqd.enrollment_status, NULL, 0, 'cli:seed', x.started FROM shaped x
UNION ALL
SELECT x.id, 'due', 'active'::seqd.enrollment_status, 'active'::seqd.enrollment_status, 0, x.step, 'daemon:seed', x.started + interval '6 days'
FROM shaped x WHERE x.step > 0
UNION ALL
SELECT x.id, CASE x.status WHEN 'completed' THEN 'due' WHEN 'replied' THEN 'reply' WHEN 'opted_out' THEN 'opt_out'
                           WHEN 'bounced' THEN 'bounce' WHEN 'paused' THEN 'pause' ELSE 'delivery_failed' END,
       'active'::seqd.enrollment_status, x.status, x.step, x.step, 'daemon:seed', x.started + interval '7 days'
FROM shaped x WHERE x.status <> 'active';

-- Deliveries: the emails passed were sent; the failed or awaited one sits at the current step.
INSERT INTO seqd.deliveries (enrollment_id, contact_id, step_key, kind, status, idempotency_key, message_id,
                             attempts, next_attempt_at, last_error, message, sent_at, created_at, updated_at,
                             sequence_id, credited_outcome)
SELECT x.id, x.id, m.key, 'email',
       CASE WHEN m.idx < x.step THEN 'sent' WHEN x.status = 'failed' THEN 'failed' ELSE 'pending' END::seqd.delivery_status,
       'seed-' || x.id || '-' || m.key, '<seed-' || x.id || '-' || m.key || '@prod.example>',
       CASE WHEN m.idx < x.step THEN 1 WHEN x.status = 'failed' THEN 2 ELSE 1 END,
       CASE WHEN m.idx < x.step OR x.status = 'failed' THEN x.started + m.idx * interval '1 day'
            ELSE now() + interval '1 day' + (x.id % 3600) * interval '1 second' END,
       CASE WHEN x.status = 'failed' AND m.idx = x.step THEN '550 5.7.1 message refused'
            WHEN m.idx = x.step THEN '451 4.3.0 try again later' END,
       jsonb_build_object('from_address', CASE WHEN x.sequence = 'prod-onboarding' THEN 'onboarding@example.com'
                                               ELSE 'news@example.com' END,
                          'to', 'p' || x.id || '@prod.example', 'subject', 'Hi Ann',
                          'text', 'Hi Ann, this is the ' || m.key || ' email of a production-size benchmark.'),
       CASE WHEN m.idx < x.step THEN x.started + m.idx * interval '1 day' END,
       x.started + m.idx * interval '1 day', x.started + m.idx * interval '1 day',
       s.id,
       -- The outcome is credited to the last email sent (migration 0015's trigger, off here).
       CASE WHEN x.status IN ('replied', 'opted_out', 'bounced') AND m.idx = x.step - 1 THEN x.status END
FROM shaped x
JOIN seqd.sequences s ON s.name = x.sequence
JOIN (VALUES (0, 'welcome'), (2, 'tips'), (4, 'last')) AS m(idx, key)
  ON m.idx < x.step OR (m.idx = x.step AND (x.status = 'failed' OR (x.status = 'active' AND x.step % 2 = 0)));

INSERT INTO seqd.delivery_attempts (delivery_id, fencing_token, worker, started_at, finished_at, outcome, reply)
SELECT d.id, d.id, 'seed', d.created_at, d.created_at + interval '200 milliseconds',
       CASE d.status WHEN 'sent' THEN 'sent' WHEN 'failed' THEN 'temporary_failure' ELSE 'temporary_failure' END,
       CASE d.status WHEN 'sent' THEN '250 2.0.0 queued' ELSE '451 4.3.0 try again later' END
FROM seqd.deliveries d
UNION ALL
SELECT d.id, d.id + 1, 'seed', d.created_at + interval '1 hour', d.created_at + interval '1 hour 200 milliseconds',
       'permanent_failure', '550 5.7.1 message refused'
FROM seqd.deliveries d WHERE d.status = 'failed';
SELECT FROM setval('seqd.fencing_tokens', (SELECT max(id) + 2 FROM seqd.deliveries));

INSERT INTO seqd.suppressions (email, reason, source, created_at)
SELECT 'p' || x.id || '@prod.example', CASE x.status WHEN 'opted_out' THEN 'opt_out' ELSE 'bounce' END, 'seed',
       x.started + interval '7 days'
FROM shaped x WHERE x.status IN ('opted_out', 'bounced');

RESET session_replication_role;
VACUUM ANALYZE;
