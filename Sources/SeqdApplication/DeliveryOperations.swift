import SequenceEngine
import SequenceStore

/// Deliveries: list them, release a held one, cancel one, record a click on one of their links;
/// and the global send switch.
extension Operations {
    public func deliveries(status: String?, limit: Int) async throws -> [DeliveryListing] {
        try await database.run { try DeliveryAdmin.list($0, status: status, limit: limit) }
    }

    /// Makes a held (`unknown`) delivery pending again; it is sent with the same key.
    public func releaseDelivery(_ id: Int64, policy: DeliveryPolicy) async throws -> DeliveryListing {
        let actor = actor.name
        return try await database.run { connection in
            try DeliveryAdmin(actor: actor, installationID: try InstallationSettings.load(connection).installationID, policy: policy)
                .release(connection, id: id)
        }
    }

    /// Cancels a delivery that is not being sent, then stops the enrollment or skips the step.
    public func cancelDelivery(
        _ id: Int64, then after: AfterCancel, reason: String?, policy: DeliveryPolicy
    ) async throws -> (delivery: DeliveryListing, enrollment: EventResult?) {
        let actor = actor.name
        return try await database.run { connection in
            try DeliveryAdmin(actor: actor, installationID: try InstallationSettings.load(connection).installationID, policy: policy)
                .cancel(connection, id: id, then: after, reason: reason)
        }
    }

    /// The global send switch (`seqd sending`).
    public func sendSwitch() async throws -> SendSwitch.State {
        try await database.run { try SendSwitch.state($0) }
    }

    public func setSendSwitch(paused: Bool) async throws -> SendSwitch.State {
        try await database.run { try SendSwitch.set(paused: paused, $0) }
    }

    /// Records a hit on a tracked link (`/c/<token>`, already verified): classified by the
    /// database (`Clicks`); nil when the delivery is unknown or its contact erased.
    public func recordClick(deliveryID: Int64, url: String, head: Bool, decoy: Bool) async throws -> RecordedClick? {
        try await database.run { try Clicks.record($0, deliveryID: deliveryID, url: url, head: head, decoy: decoy) }
    }
}
