import Foundation
import Testing
import TestSupport

@Suite("systemd notify protocol")
struct SystemdNotifyTests {
    @Test("seqd run says READY=1, keeps the watchdog fed with a STATUS, and says STOPPING=1 on SIGTERM")
    func notifyProtocol() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "notify", sequence: SignalTests.longWait, name: "slow", contacts: ["a@example.com"])
        let socket = try NotifySocket()
        let daemon = DaemonProcess(
            scenario.seqd,
            environment: ["NOTIFY_SOCKET": socket.environmentValue, "WATCHDOG_USEC": "1000000", "SEQD_LOG_LEVEL": "warning",
                          "SEQD_DELIVERY_TRANSPORT": "null"],
            name: "notify")
        try daemon.start()
        var messages = [String]()
        try await waitUntil(timeout: .seconds(30), "READY=1 and two watchdog pings") {
            while let message = socket.receive() { messages.append(message) }
            return messages.contains { $0.contains("READY=1") } && messages.filter { $0.contains("WATCHDOG=1") }.count >= 2
        }
        #expect(messages.first?.hasPrefix("READY=1") == true, "\(messages)")
        #expect(messages.contains { $0.contains("STATUS=") })
        daemon.send(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        while let message = socket.receive() { messages.append(message) }
        #expect(messages.contains("STOPPING=1"), "\(messages)")
    }
}
