import Foundation
import SequenceEngine
import SequenceStore
import Testing
@testable import SequenceDaemon

/// The sessions' queue: room, freshness and give-backs, without a database.
@Suite("session queue (Handoff)")
struct HandoffTests {
    @Test("room is bounded by capacity; what is delivered is taken oldest first")
    func roomAndOrder() {
        let queue = Handoff(capacity: 3, senders: 1, leaseSeconds: 30)
        #expect(queue.reserve(upTo: 5) == 3)
        #expect(queue.reserve(upTo: 1) == 0)
        queue.release(3)
        #expect(queue.reserve(upTo: 2) == 2)
        #expect(queue.deliver([], reserved: 2, leaseStart: .now, othersPending: false).isEmpty)
        #expect(queue.isEmpty)
    }

    @Test("closed: nothing more is accepted, and a claim is due when one was asked for")
    func closedAndClaimDue() {
        let queue = Handoff(capacity: 10, senders: 1, leaseSeconds: 30)
        #expect(queue.claimDue(every: .seconds(60)) == false)
        queue.wantClaim()
        #expect(queue.claimDue(every: .seconds(60)))
        #expect(queue.claimDue(every: .seconds(60)) == false, "the sender it answered takes it on")
        #expect(queue.close().isEmpty)
        #expect(queue.reserve(upTo: 1) == 0)
    }
}
