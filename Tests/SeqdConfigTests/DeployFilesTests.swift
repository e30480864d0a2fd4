import Foundation
import Testing
import Yams

/// The deployment files are plain text no engine runs here, so they are checked as data: they
/// parse, and they say what the runbook promises.
@Suite("deployment files")
struct DeployFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// Every YAML document in a manifest file, as plain dictionaries.
    static func documents(_ path: String) throws -> [[String: Any]] {
        try Yams.load_all(yaml: try text(path)).compactMap { $0 as? [String: Any] }
    }

    @Test("the Deployment runs three replicas with health and readiness probes and a grace above the daemon's")
    func deployment() throws {
        let documents = try Self.documents("Deploy/kubernetes/deployment.yaml")
        let kinds = documents.compactMap { $0["kind"] as? String }
        #expect(kinds == ["Deployment", "PodDisruptionBudget", "Service"])
        let deployment = try #require(documents.first)
        let spec = try #require(deployment["spec"] as? [String: Any])
        #expect(spec["replicas"] as? Int == 3)
        let pod = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
        let grace = try #require(pod["terminationGracePeriodSeconds"] as? Int)
        #expect(grace > 20, "must exceed worker.shutdown_grace")
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        let liveness = (container["livenessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
        let readiness = (container["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
        #expect(liveness?["path"] as? String == "/healthz")
        #expect(readiness?["path"] as? String == "/readyz")
        let env = try #require(container["env"] as? [[String: Any]])
        let databaseURL = env.first { $0["name"] as? String == "DATABASE_URL" }
        #expect(((databaseURL?["valueFrom"] as? [String: Any])?["secretKeyRef"] as? [String: Any])?["name"] as? String == "seqd-database")
        let budget = documents[1]["spec"] as? [String: Any]
        #expect(budget?["minAvailable"] as? Int == 2)
    }

    @Test("the migration Job and the Secret parse and connect as the owner role")
    func jobAndSecret() throws {
        let job = try #require(try Self.documents("Deploy/kubernetes/migrate-job.yaml").first)
        #expect(job["kind"] as? String == "Job")
        #expect(try Self.text("Deploy/kubernetes/migrate-job.yaml").contains("key: owner-url"))
        let secret = try #require(try Self.documents("Deploy/kubernetes/secret.yaml").first)
        #expect(secret["kind"] as? String == "Secret")
        let data = try #require(secret["stringData"] as? [String: String])
        #expect(data["runtime-url"]?.contains("seqd_runtime") == true)
        #expect(data["owner-url"]?.contains("seqd_owner") == true)
    }

    @Test("the systemd unit is Type=notify with a watchdog, hardened, and takes secrets as credentials")
    func systemdUnit() throws {
        let unit = try Self.text("Deploy/systemd/seqd.service")
        for directive in [
            "Type=notify", "WatchdogSec=", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
            "ProtectHome=yes", "PrivateTmp=yes", "RestrictAddressFamilies=", "CapabilityBoundingSet=\n", "DynamicUser=yes",
            "LoadCredential=database-url:", "SEQD_DATABASE_URL_FILE=%d/database-url",
        ] {
            #expect(unit.contains(directive), "seqd.service lacks \(directive)")
        }
        let settings = unit.split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(!settings.contains { $0.contains("postgresql://") }, "no connection string in the unit's settings")
        let migrate = try Self.text("Deploy/systemd/seqd-migrate.service")
        #expect(migrate.contains("Type=oneshot") && migrate.contains("seqd migrate"))
    }

    @Test("systemd-analyze verify accepts both units (where systemd-analyze is installed)")
    func systemdAnalyze() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
            print("systemd-analyze is not installed: unit verification skipped")
            return
        }
        // The binary is not installed at /usr/local/bin here; verify everything else about the units.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqd-units-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var paths = [String]()
        for name in ["seqd.service", "seqd-migrate.service"] {
            let unit = try Self.text("Deploy/systemd/\(name)").replacingOccurrences(of: "/usr/local/bin/seqd", with: "/bin/true")
            let path = directory.appendingPathComponent(name).path
            try unit.write(toFile: path, atomically: true, encoding: .utf8)
            paths.append(path)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        process.arguments = ["verify", "--man=no"] + paths
        let output = Pipe()
        process.standardError = output
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(!text.contains("Unknown key"), "\(text)")
    }

    @Test("the container image is multi-stage, runs as non-root with a healthcheck")
    func containerfile() throws {
        let file = try Self.text("Deploy/container/Containerfile")
        #expect(file.components(separatedBy: "\nFROM ").count + (file.hasPrefix("FROM ") ? 1 : 0) >= 2)
        #expect(file.contains("--static-swift-stdlib"))
        #expect(file.contains("libpq5") && file.contains("libcurl4"))
        #expect(file.contains("USER 10001"))
        #expect(file.contains("HEALTHCHECK"))
    }
}
