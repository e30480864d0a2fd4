extension Migrations {
    /// `sender.daily_limit` (issue 7): slots reserved per sender address and day.
    static let senderLimits = Migration(
        version: 4, name: "sender_limits",
        sql: #"""
            -- Emails queued per sender address and day; the day is the sequence's (its time_zone)
            -- by the database clock. Each advance batch reserves the slots it needs with one upsert
            -- per sender that grants up to what the limit leaves (last_grant is that grant, read by
            -- RETURNING), so the count never exceeds the limit whatever the number of replicas.
            -- A slot is used when the email's delivery row is queued, not when it is sent.
            CREATE TABLE seqd.sender_daily_counts (
                sender      text NOT NULL CHECK (sender = lower(sender)),
                day         date NOT NULL,
                reserved    integer NOT NULL CHECK (reserved >= 0),
                last_grant  integer NOT NULL CHECK (last_grant >= 0),
                updated_at  timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (sender, day)
            );
            """#)
}
