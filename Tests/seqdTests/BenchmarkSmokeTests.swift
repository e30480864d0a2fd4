import Foundation
import Testing
import TestSupport

/// The benchmark harness in smoke mode (`Benchmarks/run --quick`): every cell runs at tiny sizes on
/// a throwaway cluster of the harness's own, with the seqd binary this test run built, so the
/// harness cannot rot. Benchmarks proper never run in CI; only this does.
///
/// PgQueuer is left out here (`--no-peer`): installing it from PyPI would make the suite depend
/// on the network and cost more than the whole smoke run. Its cells must still be reported,
/// as unavailable with that reason.
@Suite("Benchmark harness smoke run", .timeLimit(.minutes(8)))
struct BenchmarkSmokeTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("Benchmarks/run --quick measures every cell and writes them all to JSON")
    func quickRunReportsEveryCell() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("seqd-bench-smoke-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let started = Date()
        let result = try await ExternalCommand.run(
            [
                Self.repository.appendingPathComponent("Benchmarks/run").path, "--quick", "--no-peer",
                "--seqd", try SeqdProcess.locateBinary().path, "--out", out.path,
            ], check: false)
        let elapsed = Date().timeIntervalSince(started)
        #expect(result.status == 0, "\(result)")

        let data = try Data(contentsOf: out.appendingPathComponent("quick.json"))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cells = try #require(report["cells"] as? [[String: Any]])
        let byID = Dictionary(uniqueKeysWithValues: cells.map { ($0["id"] as? String ?? "", $0) })

        // The cells this harness promises; each must be measured, or say why it is not.
        var expected = ["peer.pgqueuer.b10", "peer.pgqueuer.b100", "smtp.sink_ceiling.s1", "smtp.sink_ceiling.s4",
                        "smtp.seqd.s1", "smtp.seqd.s4", "seqd.lag.n1000", "seqd.first_step.n1000", "seqd.peak_rss.n1000"]
        for script in ["advance", "email"] {
            for batch in [1, 100] { expected += [1, 2, 4].map { "ceiling.\(script).b\(batch).c\($0).n1000" } }
        }
        for kind in ["waits", "emails_null", "emails_file"] { expected += [1, 2, 4].map { "seqd.\(kind).r\($0).n1000" } }
        expected += ["ceiling", "seqd"].flatMap { who in ["during", "after"].map { "adversarial.\(who).\($0).n1000" } }
        expected += ["relay.seqd.s4", "relay.seqd.s16"]
        for id in expected {
            let cell = try #require(byID[id], "cell \(id) is missing from the report")
            let status = cell["status"] as? String ?? "?"
            #expect(["ok", "unavailable", "pending", "skipped"].contains(status), "\(id): \(status) \(cell["reason"] ?? "")")
            if status == "ok" {
                #expect((cell["value"] as? Double ?? 0) > 0, "\(id) measured nothing")
            } else {
                #expect(!(cell["reason"] as? String ?? "").isEmpty, "\(id) is \(status) without a reason")
            }
        }
        // What the harness itself measures must never be "unavailable": only PgQueuer (left out
        // here), the SMTP sink (fetched from Debian) and the adversarial cell (full runs only) may be.
        for id in expected where id.hasPrefix("ceiling.") || id.hasPrefix("seqd.") {
            #expect(byID[id]?["status"] as? String == "ok", "\(id): \(byID[id]?["reason"] ?? "")")
        }
        // The crash cell's figure (copies per kill) may well be 0; it must have killed something.
        let crash = try #require(byID["crash.smtp.kill"], "cell crash.smtp.kill is missing from the report")
        #expect(["ok", "unavailable"].contains(crash["status"] as? String ?? "?"), "crash: \(crash["reason"] ?? "")")
        if crash["status"] as? String == "ok" { #expect((crash["kills"] as? Double ?? 0) >= 1, "the crash cell killed nothing") }
        // The endurance cell's figure is a growth (zero or negative when flat): it has its own check.
        let endurance = try #require(byID["seqd.rss_endurance"], "cell seqd.rss_endurance is missing from the report")
        #expect(endurance["status"] as? String == "ok", "\(endurance["reason"] ?? "")")
        #expect((endurance["end_mib"] as? Double ?? 0) > 0 && (endurance["warm_mib"] as? Double ?? 0) > 0, "\(endurance)")
        #expect(byID["peer.pgqueuer.b10"]?["status"] as? String == "unavailable")
        #expect((report["table"] as? String ?? "").contains("ceiling (a) advance, batch 100"))
        // Not a timed assertion (a loaded machine may take several times longer); the figure is
        // printed so a smoke mode that grows out of "about a minute" is noticed.
        // The production-size cell (issue 21) at its quick size: every question timed, the migrate
        // run while the daemon sends.
        let production = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("quick-production.json")))
                as? [String: Any])
        let productionCells = try #require(production["cells"] as? [[String: Any]])
        let productionIDs = productionCells.compactMap { $0["cell"] as? String }
        for id in ["production.seed.n20000", "production.view.step_funnel.sequence.n20000", "production.command.check.n20000",
                   "production.command.prune.dry_run.n20000", "production.migrate.n20000"] {
            #expect(productionIDs.contains(id), "\(id) is missing: \(productionIDs)")
        }
        for cell in productionCells {
            #expect(cell["status"] as? String == "ok", "\(cell)")
        }
        let migrate = productionCells.first { $0["cell"] as? String == "production.migrate.n20000" }
        #expect((migrate?["moved"] as? Int ?? 0) > 0, "\(String(describing: migrate))")
        print("benchmark smoke run: \(Int(elapsed)) s")
    }
}
