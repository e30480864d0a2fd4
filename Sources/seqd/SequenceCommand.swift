import ArgumentParser

struct SequenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sequence", abstract: "Manage sequences.")
}
