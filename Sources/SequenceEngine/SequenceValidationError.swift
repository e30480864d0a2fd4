/// Everything wrong with a sequence file, collected in one pass so an author fixes it in one go.
/// Printed one issue per line: `onboarding.yaml: steps[2].duration: '2x' is not a duration (…)`.
public struct SequenceValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// One problem at one place in the file.
    public struct Issue: Sendable, Equatable, CustomStringConvertible {
        /// The file name given to the parser.
        public let file: String
        /// The field path, e.g. `steps[2].duration` (0-based index into `steps`); empty for the whole file.
        public let path: String
        /// What is wrong.
        public let message: String

        /// Creates an issue.
        public init(file: String, path: String, message: String) {
            self.file = file
            self.path = path
            self.message = message
        }

        public var description: String {
            path.isEmpty ? "\(file): \(message)" : "\(file): \(path): \(message)"
        }
    }

    /// In file order; never empty.
    public let issues: [Issue]

    /// Creates the error from its issues.
    public init(issues: [Issue]) {
        self.issues = issues
    }

    public var description: String { issues.map(\.description).joined(separator: "\n") }
}
