import Foundation
import Testing
import Yams

/// The deployment files checked as data: they parse, they say what the runbook promises, and the
/// Kubernetes manifests pass Kubernetes' own schemas. The image itself is built and run by
/// Scripts/test-container.
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
        // The root file system is read-only, and `seqd run` needs a writable working directory
        // (the file transport's outbox): found by running the image (Scripts/test-container).
        let security = container["securityContext"] as? [String: Any]
        #expect(security?["readOnlyRootFilesystem"] as? Bool == true)
        let mounts = container["volumeMounts"] as? [[String: Any]] ?? []
        let state = mounts.first { $0["mountPath"] as? String == "/var/lib/seqd" }
        #expect(state != nil && state?["readOnly"] as? Bool != true, "nothing writable mounted at the image's WORKDIR")
        let budget = documents[1]["spec"] as? [String: Any]
        #expect(budget?["minAvailable"] as? Int == 2)
    }

    /// Each pod's containers, with the pod spec they run in.
    static func pods(_ path: String) throws -> [[String: Any]] {
        try documents(path).compactMap { document in
            ((document["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any]
        }
    }

    @Test("each pod mounts, from the Secret, the CA file its database URL names as sslrootcert")
    func databaseCA() throws {
        let secret = try #require(try Self.documents("Deploy/kubernetes/secret.yaml").first)
        let secretName = try #require((secret["metadata"] as? [String: Any])?["name"] as? String)
        let data = try #require(secret["stringData"] as? [String: String])
        for path in ["Deploy/kubernetes/deployment.yaml", "Deploy/kubernetes/migrate-job.yaml"] {
            let pod = try #require(try Self.pods(path).first)
            let container = try #require((pod["containers"] as? [[String: Any]])?.first)
            let env = try #require(container["env"] as? [[String: Any]])
            let reference = try #require(
                env.first { $0["name"] as? String == "DATABASE_URL" }.flatMap {
                    ($0["valueFrom"] as? [String: Any])?["secretKeyRef"] as? [String: Any]
                })
            #expect(reference["name"] as? String == secretName, "\(path)")
            let key = try #require(reference["key"] as? String)
            let urlString = try #require(data[key], "\(path): the Secret has no \(key)")
            let url = try #require(URLComponents(string: urlString))
            #expect(url.queryItems?.first { $0.name == "sslmode" }?.value == "verify-full", "\(path)")
            let caPath = try #require(url.queryItems?.first { $0.name == "sslrootcert" }?.value, "\(path)")
            let mounts = container["volumeMounts"] as? [[String: Any]] ?? []
            let volumes = pod["volumes"] as? [[String: Any]] ?? []
            // The file at caPath is some mount's directory plus the path of one of its Secret items.
            let provided = mounts.contains { mount in
                guard let directory = mount["mountPath"] as? String, caPath.hasPrefix(directory + "/"),
                    let volume = volumes.first(where: { $0["name"] as? String == mount["name"] as? String }),
                    let source = volume["secret"] as? [String: Any], source["secretName"] as? String == secretName
                else { return false }
                let file = String(caPath.dropFirst(directory.count + 1))
                guard let items = source["items"] as? [[String: Any]] else { return data[file] != nil }
                return items.contains { $0["path"] as? String == file && data[$0["key"] as? String ?? ""] != nil }
            }
            #expect(provided, "\(path): nothing mounts \(caPath) from the Secret \(secretName)")
        }
    }

    /// `kubernetes-validate`, from SEQD_KUBERNETES_VALIDATE (Scripts/test installs it in a virtual
    /// environment) or the PATH.
    static func kubernetesValidate() -> String? {
        if let path = ProcessInfo.processInfo.environment["SEQD_KUBERNETES_VALIDATE"], !path.isEmpty {
            return path
        }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
            .map { "\($0)/kubernetes-validate" }
        return path.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `kubernetes-validate --strict` on files; its exit status and output.
    static func validate(_ executable: String, _ files: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--strict", "--quiet"] + files
        let output = Pipe()
        process.standardError = output
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    @Test("Kubernetes' own schemas accept every manifest, strictly (where kubernetes-validate is installed)")
    func kubernetesSchemas() throws {
        guard let executable = Self.kubernetesValidate() else {
            print("kubernetes-validate is not installed: manifest schema validation skipped")
            return
        }
        let files = ["deployment.yaml", "migrate-job.yaml", "secret.yaml"]
            .map { Self.root.appendingPathComponent("Deploy/kubernetes/\($0)").path }
        let (status, output) = try Self.validate(executable, files)
        #expect(status == 0, "\(output)")
        // The validator is really strict: one misspelled field fails it.
        let misspelled = try Self.text("Deploy/kubernetes/deployment.yaml")
            .replacingOccurrences(of: "readinessProbe:", with: "readinesProbe:")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("seqd-\(UUID().uuidString).yaml").path
        try misspelled.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (rejected, message) = try Self.validate(executable, [path])
        #expect(rejected != 0 && message.contains("readinesProbe"), "\(message)")
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

    @Test("the container image: multi-stage, overridable bases, a prebuilt target, one user and group, a health check on the configured port")
    func containerfile() throws {
        let file = try Self.text("Deploy/container/Containerfile")
        for line in [
            "ARG BUILD_IMAGE=", "ARG RUNTIME_IMAGE=", "FROM ${BUILD_IMAGE} AS build", "FROM ${RUNTIME_IMAGE} AS runtime-base",
            "FROM runtime-base AS runtime-prebuilt", "ARG SEQD_BINARY=", "FROM runtime-base AS runtime\n",
            "--static-swift-stdlib", "libpq5", "libcurl4", "groupadd --gid 10001 seqd",
            "--uid 10001 --gid 10001", "USER 10001:10001", "HEALTHCHECK",
        ] {
            #expect(file.contains(line), "the Containerfile lacks \(line)")
        }
        // The default target is the last stage: the one built from source.
        let stages = file.split(separator: "\n").filter { $0.hasPrefix("FROM ") }
        #expect(stages.last == "FROM runtime-base AS runtime")
        let healthcheck = try #require(file.range(of: "HEALTHCHECK").map { String(file[$0.lowerBound...]) })
        let command = healthcheck.prefix { $0 != "]" }
        #expect(command.contains("SEQD_HTTP_PORT") && !command.contains("/8080"), "\(command)")
    }
}
