import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceStore

struct SendingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sending",
        abstract: "The global send switch: hold every delivery on every replica at once, losing none.",
        discussion: """
            While paused, daemons keep advancing enrollments and queue their deliveries as pending; nothing \
            is handed to a transport. Sends already in flight settle normally.

            Examples:
              seqd sending pause     # the incident button
              seqd sending status --json
              seqd sending resume
            """,
        subcommands: [Pause.self, Resume.self, Status.self])

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hold all deliveries.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print JSON.") var json = false
        func run() async throws { try await show(try await change(global, paused: true), json: json) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release held deliveries.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print JSON.") var json = false
        func run() async throws { try await show(try await change(global, paused: false), json: json) }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show whether sending is paused.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print JSON.") var json = false
        func run() async throws {
            let configuration = try await global.loadConfiguration()
            try await show(try await configuration.operations("sending").sendSwitch(), json: json)
        }
    }
}

private func change(_ global: GlobalOptions, paused: Bool) async throws -> SendSwitch.State {
    let configuration = try await global.loadConfiguration()
    return try await configuration.operations("sending").setSendSwitch(paused: paused)
}

private func show(_ state: SendSwitch.State, json: Bool) async throws {
    if json { return try printJSON(state) }
    let since = state.since.map { " since \(RFC3339.format($0))" } ?? ""
    print("sending is \(state.paused ? "PAUSED" : "on")\(since); \(state.pendingDeliveries) deliveries pending")
}
