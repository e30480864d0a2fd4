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

    @Test("items are checked again at half their freshness, ahead of the sessions, and taken only while fresh")
    func checkedAhead() {
        let queue = Handoff(capacity: 4, senders: 1, leaseSeconds: 30, freshness: .seconds(1))
        let now = ContinuousClock.now
        #expect(queue.reserve(upTo: 3) == 3)
        _ = queue.deliver([SendingSessionTests.delivery(1)], reserved: 1, leaseStart: now - .milliseconds(700), othersPending: false)
        _ = queue.deliver([SendingSessionTests.delivery(2)], reserved: 1, leaseStart: now - .milliseconds(100), othersPending: false)
        _ = queue.deliver([SendingSessionTests.delivery(3)], reserved: 1, leaseStart: now - .milliseconds(1_500), othersPending: false)
        // Past half its freshness (0.7 s and 1.5 s old): the claimer checks it again now.
        #expect(Set(queue.takeUnchecked().map(\.delivery.id)) == [1, 3])
        #expect(queue.count == 1)
        // Only what was checked within the freshness goes to a session.
        let earlier = queue.takeUnchecked()
        #expect(earlier.isEmpty)
        queue.requeue([Handoff.Item(delivery: SendingSessionTests.delivery(3), leaseStart: now - .milliseconds(1_500), checkedAt: now - .milliseconds(1_200))])
        #expect(queue.take(upTo: 5).map(\.delivery.id) == [2])
        #expect(queue.recheckWanted, "the stale one waits for the claimer, which is told")
    }
}
