extension Migrations {
    /// Webhook steps can save fields of their receiver's response on the enrollment (`save:`),
    /// for later branches to test (`{ step_data: score, greater_than: 50 }`). A constant default,
    /// so the column is added without rewriting the table. The settle that writes it also appends
    /// a `step_data_saved` event naming the step and the fields, so `inspect` shows where a value
    /// came from.
    static let webhookSteps = Migration(
        version: 11, name: "webhook_steps",
        sql: #"""
            ALTER TABLE seqd.enrollments ADD COLUMN IF NOT EXISTS step_data jsonb NOT NULL DEFAULT '{}';
            COMMENT ON COLUMN seqd.enrollments.step_data IS
                'fields saved from webhook responses (save:), read by branch conditions (step_data:)';
            """#)
}
