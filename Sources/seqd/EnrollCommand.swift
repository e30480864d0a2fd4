import ArgumentParser

struct EnrollCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enroll", abstract: "Enroll contacts in a sequence.")
}
