import ArgumentParser

enum OperatorCommands {
    static let all: [any ParsableCommand.Type] = []
}
