extension Migrations {
    /// Least privilege enforced by the database, not by seqd's good behaviour (issue 16).
    ///
    /// - The audit trail (`enrollment_events`), the attempt log (`delivery_attempts`), `signals` and
    ///   the suppression list are append-only for every role but the tables' owner: statement
    ///   triggers refuse UPDATE, DELETE and TRUNCATE from anyone else, whatever `roles.sql` granted
    ///   (privileges say the same once it ran again; the triggers also hold before it does).
    ///   The owner keeps `seqd prune` and `seqd suppression remove` (audited below).
    /// - One narrow exception, which the send path needs: an attempt row still open (`finished_at`
    ///   NULL) or recorded as `unknown` may be finished by the runtime role — a late confirmation
    ///   corrects the `unknown` a lease rescue wrote. `roles.sql` limits the runtime role's UPDATE
    ///   to the columns `finished_at`, `outcome` and `reply`; the trigger refuses any change to a
    ///   row already final.
    /// - Contact erasure must scrub rows of those tables: it runs as `seqd.erase_contact_history`,
    ///   SECURITY DEFINER (the owner's rights for exactly that statement list), executable only by
    ///   the roles `roles.sql` grants it to.
    /// - `seqd.settings`: other roles may write only the send switch (`sending.*`), never the
    ///   unsubscribe secret or the installation id.
    /// - Removing a suppression writes a `signals` row (kind `unsuppress`) naming the database user.
    /// - Contact addresses may not hold control characters (new rows; seqd refuses them earlier).
    /// - Every function in schema `seqd` runs with a fixed `search_path`, so no object a role
    ///   creates elsewhere (`public`, `pg_temp`) can stand in for one of seqd's or the catalog's.
    static let leastPrivilege = Migration(
        version: 6, name: "least_privilege",
        sql: #"""
            -- Whether the current role may act as the owner of `relation` (members of the owning
            -- role and superusers may; pg_has_role answers true for superusers).
            CREATE FUNCTION seqd.acts_as_owner(relation oid) RETURNS boolean
            LANGUAGE sql STABLE
            AS $$ SELECT pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER')
                  FROM pg_catalog.pg_class c WHERE c.oid = relation $$;

            CREATE FUNCTION seqd.append_only() RETURNS trigger
            LANGUAGE plpgsql
            AS $$
            BEGIN
                IF NOT seqd.acts_as_owner(TG_RELID) THEN
                    RAISE EXCEPTION 'seqd.% is append-only: % is reserved to its owner', TG_TABLE_NAME, TG_OP
                        USING ERRCODE = 'insufficient_privilege',
                              HINT = 'seqd prune and seqd suppression remove run as the owner role';
                END IF;
                RETURN NULL;
            END $$;

            CREATE TRIGGER enrollment_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON seqd.enrollment_events
                FOR EACH STATEMENT EXECUTE FUNCTION seqd.append_only();
            CREATE TRIGGER signals_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON seqd.signals
                FOR EACH STATEMENT EXECUTE FUNCTION seqd.append_only();
            CREATE TRIGGER suppressions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON seqd.suppressions
                FOR EACH STATEMENT EXECUTE FUNCTION seqd.append_only();
            CREATE TRIGGER delivery_attempts_append_only BEFORE DELETE OR TRUNCATE ON seqd.delivery_attempts
                FOR EACH STATEMENT EXECUTE FUNCTION seqd.append_only();

            -- Only rows that are not final yet reach the function (WHEN), so the send path pays
            -- nothing for the check.
            CREATE FUNCTION seqd.delivery_attempts_final() RETURNS trigger
            LANGUAGE plpgsql
            AS $$
            BEGIN
                IF NOT seqd.acts_as_owner(TG_RELID) THEN
                    RAISE EXCEPTION 'delivery attempt % is final (outcome %): its record is not rewritten', OLD.id, OLD.outcome
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER delivery_attempts_final BEFORE UPDATE ON seqd.delivery_attempts
                FOR EACH ROW WHEN (OLD.finished_at IS NOT NULL AND OLD.outcome IS DISTINCT FROM 'unknown')
                EXECUTE FUNCTION seqd.delivery_attempts_final();

            CREATE FUNCTION seqd.settings_guard() RETURNS trigger
            LANGUAGE plpgsql
            AS $$
            BEGIN
                IF NOT seqd.acts_as_owner(TG_RELID)
                   AND ((TG_OP <> 'INSERT' AND OLD.name NOT LIKE 'sending.%')
                        OR (TG_OP <> 'DELETE' AND NEW.name NOT LIKE 'sending.%')) THEN
                    RAISE EXCEPTION 'seqd.settings: % of % is reserved to the owner', TG_OP, COALESCE(NEW.name, OLD.name)
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                RETURN COALESCE(NEW, OLD);
            END $$;
            CREATE TRIGGER settings_guard BEFORE INSERT OR UPDATE OR DELETE ON seqd.settings
                FOR EACH ROW EXECUTE FUNCTION seqd.settings_guard();

            -- The audit record of a lifted suppression. The address is not repeated (the contact
            -- id links it, and an erased contact's suppression is a hash anyway).
            CREATE FUNCTION seqd.suppressions_audit_delete() RETURNS trigger
            LANGUAGE plpgsql
            AS $$
            BEGIN
                INSERT INTO seqd.signals (kind, source, contact_id, detail)
                SELECT 'unsuppress', COALESCE(NULLIF(current_setting('seqd.actor', true), ''), session_user::text),
                       (SELECT c.id FROM seqd.contacts c WHERE lower(c.email) = o.email LIMIT 1),
                       jsonb_build_object('removed_reason', o.reason, 'removed_source', o.source, 'suppressed_at', o.created_at,
                                          'database_user', session_user::text,
                                          'why', NULLIF(current_setting('seqd.reason', true), ''))
                FROM old_rows o;
                RETURN NULL;
            END $$;
            CREATE TRIGGER suppressions_audit_delete AFTER DELETE ON seqd.suppressions
                REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION seqd.suppressions_audit_delete();

            -- `text` with every occurrence of `address` (any case) replaced; the search resumes
            -- after each replacement, so a replacement that contains the address cannot loop.
            CREATE FUNCTION seqd.scrub(text text, address text, replacement text) RETURNS text
            LANGUAGE plpgsql IMMUTABLE
            AS $$
            DECLARE
                result text := text;
                start integer := 1;
                found integer;
            BEGIN
                IF result IS NULL OR address IS NULL OR address = '' THEN RETURN result; END IF;
                LOOP
                    found := strpos(lower(substr(result, start)), lower(address));
                    EXIT WHEN found = 0;
                    found := start + found - 1;
                    result := overlay(result PLACING replacement FROM found FOR length(address));
                    start := found + length(replacement);
                END LOOP;
                RETURN result;
            END $$;

            -- Erasure's writes to append-only rows, with the owner's rights and nothing more.
            CREATE FUNCTION seqd.erase_contact_history(contact bigint, address text, replacement text) RETURNS void
            LANGUAGE plpgsql SECURITY DEFINER
            AS $$
            BEGIN
                -- Keep an earlier opt-out's or bounce's reason and time; only the address becomes a hash.
                UPDATE seqd.suppressions SET email = seqd.address_hash(address),
                       reason = CASE WHEN source = 'erase' THEN 'erased' ELSE reason END
                WHERE email = lower(address);
                UPDATE seqd.delivery_attempts a SET reply = NULL FROM seqd.deliveries d
                WHERE a.delivery_id = d.id AND d.contact_id = contact AND a.reply IS NOT NULL;
                UPDATE seqd.signals SET detail = NULL WHERE contact_id = contact AND detail IS NOT NULL;
                UPDATE seqd.deliveries SET last_error = seqd.scrub(last_error, address, replacement)
                WHERE contact_id = contact AND strpos(lower(last_error), lower(address)) > 0;
                UPDATE seqd.enrollments SET last_error = seqd.scrub(last_error, address, replacement)
                WHERE contact_id = contact AND strpos(lower(last_error), lower(address)) > 0;
                UPDATE seqd.enrollment_events v
                SET reason = seqd.scrub(v.reason, address, replacement),
                    detail = seqd.scrub(v.detail::text, address, replacement)::jsonb
                FROM seqd.enrollments e
                WHERE v.enrollment_id = e.id AND e.contact_id = contact
                  AND (strpos(lower(v.reason), lower(address)) > 0 OR strpos(lower(v.detail::text), lower(address)) > 0);
            END $$;
            REVOKE EXECUTE ON FUNCTION seqd.erase_contact_history(bigint, text, text) FROM PUBLIC;

            -- An address with a control character would be cut at it when sent; new rows are checked
            -- (NOT VALID: no scan of existing rows under a lock; `seqd check` can look at those).
            ALTER TABLE seqd.contacts ADD CONSTRAINT contacts_email_no_controls CHECK (email !~ '[[:cntrl:]]') NOT VALID;

            -- Last: every function of the schema, the earlier migrations' included.
            DO $$
            DECLARE
                f regprocedure;
            BEGIN
                FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
                         WHERE p.pronamespace = 'seqd'::regnamespace AND p.prokind = 'f'
                LOOP
                    EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, seqd, pg_temp', f);
                END LOOP;
            END $$;
            """#)
}
