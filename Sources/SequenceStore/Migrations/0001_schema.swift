extension Migrations {
    /// The core schema: contacts, suppressions, sequences and their immutable versions, enrollments
    /// with their transition table and audit trail, the delivery outbox and its attempts, signals.
    static let schema = Migration(
        version: 1, name: "schema",
        sql: #"""
            CREATE TYPE seqd.enrollment_status AS ENUM
                ('active', 'paused', 'completed', 'replied', 'opted_out', 'bounced', 'failed', 'stopped');
            CREATE TYPE seqd.delivery_status AS ENUM
                ('pending', 'sending', 'sent', 'failed', 'cancelled', 'unknown');

            -- Installation-wide values (the generated unsubscribe secret; later the send switch).
            CREATE TABLE seqd.settings (
                name        text PRIMARY KEY,
                value       text NOT NULL,
                updated_at  timestamptz NOT NULL DEFAULT now()
            );

            CREATE TABLE seqd.contacts (
                id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                email       text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
                first_name  text,
                last_name   text,
                time_zone   text,
                attributes  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
                created_at  timestamptz NOT NULL DEFAULT now(),
                updated_at  timestamptz NOT NULL DEFAULT now()
            );
            -- One contact per address, whatever its case.
            CREATE UNIQUE INDEX contacts_email_key ON seqd.contacts (lower(email));

            -- The global suppression list: addresses are stored lower-cased.
            CREATE TABLE seqd.suppressions (
                email       text PRIMARY KEY CHECK (email = lower(email)),
                reason      text NOT NULL CHECK (reason IN ('opt_out', 'bounce', 'complaint', 'manual')),
                source      text NOT NULL,
                created_at  timestamptz NOT NULL DEFAULT now()
            );

            CREATE TABLE seqd.sequences (
                id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                name        text NOT NULL UNIQUE,
                -- Set while the whole sequence is held (`seqd sequence pause`); enrollments keep
                -- their place and their waits are shifted by the pause's length on resume.
                paused_at   timestamptz,
                created_at  timestamptz NOT NULL DEFAULT now()
            );

            -- Each apply that changes content adds a version; versions never change afterwards.
            CREATE TABLE seqd.sequence_versions (
                sequence_id  bigint NOT NULL REFERENCES seqd.sequences (id),
                version      integer NOT NULL CHECK (version > 0),
                definition   jsonb NOT NULL,
                content_hash text NOT NULL,
                source_file  text,
                created_at   timestamptz NOT NULL DEFAULT now(),
                created_by   text NOT NULL DEFAULT session_user,
                PRIMARY KEY (sequence_id, version)
            );

            CREATE FUNCTION seqd.sequence_versions_immutable() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'sequence versions are immutable; apply a new version instead'
                    USING ERRCODE = 'SQ002';
            END $$;
            CREATE TRIGGER sequence_versions_immutable
                BEFORE UPDATE OR DELETE ON seqd.sequence_versions
                FOR EACH STATEMENT EXECUTE FUNCTION seqd.sequence_versions_immutable();

            CREATE TABLE seqd.enrollments (
                id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                contact_id         bigint NOT NULL REFERENCES seqd.contacts (id),
                sequence_id        bigint NOT NULL,
                sequence_version   integer NOT NULL,
                status             seqd.enrollment_status NOT NULL DEFAULT 'active',
                -- Position of the step to run next in the pinned version's steps (0-based).
                current_step_index integer NOT NULL DEFAULT 0 CHECK (current_step_index >= 0),
                -- NULL while active means "awaiting delivery" of the current email.
                next_run_at        timestamptz,
                -- Out-of-office pauses end by themselves at this time.
                resume_at          timestamptz,
                -- A paused enrollment's wait left to run; NULL when it was awaiting delivery.
                remaining_wait     interval,
                attempts           integer NOT NULL DEFAULT 0,
                last_error         text,
                created_at         timestamptz NOT NULL DEFAULT now(),
                updated_at         timestamptz NOT NULL DEFAULT now(),
                FOREIGN KEY (sequence_id, sequence_version) REFERENCES seqd.sequence_versions
            );
            -- The due claim: ORDER BY next_run_at over active rows only. The predicate cannot call
            -- now(), so "due" is the range condition of the claim query.
            CREATE INDEX enrollments_due ON seqd.enrollments (next_run_at) WHERE status = 'active';
            -- Invariant 5: one live enrollment per contact and sequence.
            CREATE UNIQUE INDEX enrollments_one_live ON seqd.enrollments (contact_id, sequence_id)
                WHERE status IN ('active', 'paused', 'failed');
            CREATE INDEX enrollments_contact ON seqd.enrollments (contact_id);
            CREATE INDEX enrollments_sequence ON seqd.enrollments (sequence_id, status);
            CREATE INDEX enrollments_resume ON seqd.enrollments (resume_at)
                WHERE status = 'paused' AND resume_at IS NOT NULL;

            -- The allowed status changes (from <> to). The Swift state machine holds the same table;
            -- a test proves them equal. Same-status updates (advancing a step) need no row here.
            CREATE TABLE seqd.enrollment_transitions (
                from_status seqd.enrollment_status NOT NULL,
                to_status   seqd.enrollment_status NOT NULL,
                PRIMARY KEY (from_status, to_status),
                CHECK (from_status <> to_status)
            );
            INSERT INTO seqd.enrollment_transitions (from_status, to_status) VALUES
                ('active', 'paused'), ('active', 'completed'), ('active', 'replied'), ('active', 'opted_out'),
                ('active', 'bounced'), ('active', 'failed'), ('active', 'stopped'),
                ('paused', 'active'), ('paused', 'replied'), ('paused', 'opted_out'),
                ('paused', 'bounced'), ('paused', 'failed'), ('paused', 'stopped'),
                ('failed', 'active'), ('failed', 'replied'), ('failed', 'opted_out'), ('failed', 'bounced'),
                ('failed', 'stopped');

            -- The audit trail: one row per insert and per change of status, step or pinned version.
            CREATE TABLE seqd.enrollment_events (
                id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                enrollment_id  bigint NOT NULL,
                event          text NOT NULL,
                from_status    seqd.enrollment_status,
                to_status      seqd.enrollment_status NOT NULL,
                from_step      integer,
                to_step        integer NOT NULL,
                actor          text NOT NULL,
                reason         text,
                detail         jsonb,
                at             timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX enrollment_events_enrollment ON seqd.enrollment_events (enrollment_id, id);

            -- Writers name their event, actor and reason per transaction with
            --   SELECT set_config('seqd.event', 'pause', true), set_config('seqd.actor', 'cli:alice', true), ...
            -- A manual change in psql sets nothing: the event is 'manual_update' and the actor the
            -- database user. An unset custom setting reads as '' once anything has set it, hence NULLIF.
            CREATE FUNCTION seqd.audit_setting(name text) RETURNS text
            LANGUAGE sql STABLE AS $$ SELECT NULLIF(current_setting(name, true), '') $$;

            CREATE FUNCTION seqd.enrollments_audit_insert() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO seqd.enrollment_events
                    (enrollment_id, event, from_status, to_status, from_step, to_step, actor, reason, detail)
                SELECT n.id, COALESCE(seqd.audit_setting('seqd.event'), 'enroll'), NULL, n.status, NULL,
                       n.current_step_index, COALESCE(seqd.audit_setting('seqd.actor'), session_user),
                       seqd.audit_setting('seqd.reason'), seqd.audit_setting('seqd.detail')::jsonb
                FROM new_rows n;
                RETURN NULL;
            END $$;
            CREATE TRIGGER enrollments_audit_insert
                AFTER INSERT ON seqd.enrollments REFERENCING NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION seqd.enrollments_audit_insert();

            -- Statement-level with transition tables, so a batch of a hundred advances costs one call.
            CREATE FUNCTION seqd.enrollments_guard_update() RETURNS trigger
            LANGUAGE plpgsql AS $$
            DECLARE
                bad record;
            BEGIN
                SELECT o.id, o.status AS from_status, n.status AS to_status INTO bad
                FROM old_rows o JOIN new_rows n ON n.id = o.id
                WHERE o.status <> n.status
                  AND NOT EXISTS (SELECT 1 FROM seqd.enrollment_transitions t
                                  WHERE t.from_status = o.status AND t.to_status = n.status)
                LIMIT 1;
                IF FOUND THEN
                    RAISE EXCEPTION 'invalid enrollment transition: enrollment % cannot go from % to %',
                        bad.id, bad.from_status, bad.to_status
                        USING ERRCODE = 'SQ001',
                              HINT = 'allowed changes are listed in seqd.enrollment_transitions';
                END IF;

                SELECT o.id, o.status INTO bad
                FROM old_rows o JOIN new_rows n ON n.id = o.id
                WHERE o.status IN ('completed', 'replied', 'opted_out', 'bounced', 'stopped')
                  AND (o.current_step_index <> n.current_step_index OR o.sequence_version <> n.sequence_version)
                LIMIT 1;
                IF FOUND THEN
                    RAISE EXCEPTION 'enrollment % is % and can no longer change step or version', bad.id, bad.status
                        USING ERRCODE = 'SQ001';
                END IF;

                INSERT INTO seqd.enrollment_events
                    (enrollment_id, event, from_status, to_status, from_step, to_step, actor, reason, detail)
                SELECT n.id, COALESCE(seqd.audit_setting('seqd.event'), 'manual_update'), o.status, n.status,
                       o.current_step_index, n.current_step_index,
                       COALESCE(seqd.audit_setting('seqd.actor'), session_user), seqd.audit_setting('seqd.reason'),
                       CASE WHEN o.sequence_version <> n.sequence_version
                            THEN COALESCE(seqd.audit_setting('seqd.detail')::jsonb, '{}')
                                 || jsonb_build_object('from_version', o.sequence_version,
                                                       'to_version', n.sequence_version)
                            ELSE seqd.audit_setting('seqd.detail')::jsonb END
                FROM old_rows o JOIN new_rows n ON n.id = o.id
                WHERE o.status <> n.status
                   OR o.current_step_index <> n.current_step_index
                   OR o.sequence_version <> n.sequence_version;
                RETURN NULL;
            END $$;
            CREATE TRIGGER enrollments_guard_update
                AFTER UPDATE ON seqd.enrollments
                REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION seqd.enrollments_guard_update();

            -- Fencing tokens for delivery leases: a confirmation carrying an older token than the
            -- row's changes nothing.
            CREATE SEQUENCE seqd.fencing_tokens;

            -- The outbox: at most one delivery per (enrollment, step key), written in the transaction
            -- that advances the enrollment (invariant 1). Retries reuse the row.
            CREATE TABLE seqd.deliveries (
                id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                enrollment_id     bigint NOT NULL REFERENCES seqd.enrollments (id),
                contact_id        bigint NOT NULL REFERENCES seqd.contacts (id),
                step_key          text NOT NULL,
                kind              text NOT NULL DEFAULT 'email' CHECK (kind IN ('email', 'webhook')),
                status            seqd.delivery_status NOT NULL DEFAULT 'pending',
                idempotency_key   text NOT NULL UNIQUE,
                message_id        text,
                lease_owner       text,
                fencing_token     bigint,
                lease_expires_at  timestamptz,
                attempts          integer NOT NULL DEFAULT 0,
                next_attempt_at   timestamptz NOT NULL DEFAULT now(),
                last_error        text,
                message           jsonb,
                provider_id       text,
                sent_at           timestamptz,
                created_at        timestamptz NOT NULL DEFAULT now(),
                updated_at        timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT deliveries_one_per_step UNIQUE (enrollment_id, step_key)
            );
            -- Claimable: pending, and unknown when delivery.on_unknown is retry.
            CREATE INDEX deliveries_claimable ON seqd.deliveries (next_attempt_at) WHERE status IN ('pending', 'unknown');
            CREATE INDEX deliveries_leases ON seqd.deliveries (lease_expires_at) WHERE status = 'sending';
            CREATE INDEX deliveries_contact ON seqd.deliveries (contact_id);
            CREATE INDEX deliveries_message_id ON seqd.deliveries (message_id);

            -- Every attempt to hand a delivery to the transport, timed by the database clock, so a
            -- duplicate on the wire can be explained afterwards.
            CREATE TABLE seqd.delivery_attempts (
                id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                delivery_id    bigint NOT NULL REFERENCES seqd.deliveries (id),
                fencing_token  bigint NOT NULL,
                worker         text NOT NULL,
                started_at     timestamptz NOT NULL DEFAULT now(),
                finished_at    timestamptz,
                -- NULL while in flight.
                outcome        text CHECK (outcome IN ('sent', 'temporary_failure', 'permanent_failure',
                                                       'bounce', 'transport_fault', 'unknown', 'skipped')),
                reply          text
            );
            CREATE INDEX delivery_attempts_delivery ON seqd.delivery_attempts (delivery_id);

            -- Replies, opt-outs, bounces, pauses and resumes as they arrived, whatever their source.
            CREATE TABLE seqd.signals (
                id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                kind           text NOT NULL,
                source         text NOT NULL,
                contact_id     bigint REFERENCES seqd.contacts (id),
                enrollment_id  bigint REFERENCES seqd.enrollments (id),
                delivery_id    bigint REFERENCES seqd.deliveries (id),
                detail         jsonb,
                received_at    timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX signals_contact ON seqd.signals (contact_id);
            """#)
}
