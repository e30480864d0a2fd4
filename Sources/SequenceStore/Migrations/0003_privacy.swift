extension Migrations {
    /// Erasure keeps an address suppressed without keeping the address: a suppression may hold
    /// `sha256:<hex of the lower-cased address>` instead of the address, and every suppression
    /// check goes through `seqd.is_suppressed`, which matches both forms.
    static let privacy = Migration(
        version: 3, name: "privacy",
        sql: #"""
            CREATE FUNCTION seqd.address_hash(address text) RETURNS text
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
            AS $$ SELECT 'sha256:' || encode(sha256(convert_to(lower(address), 'UTF8')), 'hex') $$;

            -- The one definition of "this address must not be mailed". Inlined by the planner, so
            -- both comparisons use the primary key.
            CREATE FUNCTION seqd.is_suppressed(address text) RETURNS boolean
            LANGUAGE sql STABLE PARALLEL SAFE
            AS $$ SELECT EXISTS (SELECT 1 FROM seqd.suppressions s
                                 WHERE s.email = lower(address) OR s.email = seqd.address_hash(address)) $$;

            ALTER TABLE seqd.suppressions DROP CONSTRAINT suppressions_reason_check;
            ALTER TABLE seqd.suppressions ADD CONSTRAINT suppressions_reason_check
                CHECK (reason IN ('opt_out', 'bounce', 'complaint', 'manual', 'erased'));
            """#)
}
