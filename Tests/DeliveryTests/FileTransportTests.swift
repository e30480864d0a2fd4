import Foundation
import Mail
import TestSupport
import Testing

@testable import Delivery

@Suite("File and null transports")
struct FileTransportTests {
    @Test("a message is written atomically as <delivery key>.eml, leaving no temporary file")
    func writesOneFile() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let transport = try FileTransport(directory: directory)
        let composed = MessageComposer(messageIDKey: .testing).compose(.sample())

        let outcome = transport.send(composed)

        #expect(outcome == .sent(providerID: directory + "/d-123-intro.eml"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["d-123-intro.eml"])
        let written = try #require(FileManager.default.contents(atPath: directory + "/d-123-intro.eml"))
        #expect(Array(written) == composed.data)
    }

    @Test("an .eml file is 0640 whatever the umask (a permissive umask included)", arguments: [0o000 as mode_t, 0o022, 0o077])
    func notWorldReadable(mask: mode_t) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let transport = try FileTransport(directory: directory)
        let previous = umask(mask)
        defer { umask(previous) }
        #expect(transport.send(MessageComposer(messageIDKey: .testing).compose(.sample())) == .sent(providerID: directory + "/d-123-intro.eml"))
        var info = stat()
        #expect(stat(directory + "/d-123-intro.eml", &info) == 0)
        #expect(info.st_mode & 0o777 == 0o640, "mode \(String(info.st_mode & 0o777, radix: 8))")
    }

    @Test("sending the same delivery again leaves exactly one identical file")
    func idempotent() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let transport = try FileTransport(directory: directory)
        let composed = MessageComposer(messageIDKey: .testing).compose(.sample(html: "<p>Hi</p>"))

        for _ in 0..<3 {
            #expect(transport.send(MessageComposer(messageIDKey: .testing).compose(.sample(html: "<p>Hi</p>"))) == .sent(providerID: directory + "/d-123-intro.eml"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["d-123-intro.eml"])
        #expect(FileManager.default.contents(atPath: directory + "/d-123-intro.eml").map(Array.init) == composed.data)
    }

    @Test("concurrent sends of one delivery still leave exactly one file")
    func concurrentSameKey() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let transport = try FileTransport(directory: directory)
        let composed = MessageComposer(messageIDKey: .testing).compose(.sample())
        // Several threads at once, as the daemon runs one transport from several sender threads.
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            #expect(transport.send(composed) == .sent(providerID: directory + "/d-123-intro.eml"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["d-123-intro.eml"])
    }

    @Test(
        "file names are safe whatever the key",
        arguments: ["../../etc/passwd", ".hidden", "a/b", "", "d 1 ✉️"]
    )
    func safeFileNames(key: String) throws {
        let name = FileTransport.fileName(forDeliveryKey: key)
        #expect(!name.contains("/") && !name.hasPrefix(".") && name.hasSuffix(".eml"))
        #expect(name.utf8.count < 200)
        #expect(FileTransport.fileName(forDeliveryKey: key) == name)
    }

    @Test("distinct keys that sanitise alike get distinct files")
    func distinctNames() {
        let names = Set(["a/b", "a_b", "a b"].map(FileTransport.fileName(forDeliveryKey:)))
        #expect(names.count == 3)
        #expect(FileTransport.fileName(forDeliveryKey: "d-1-intro") == "d-1-intro.eml")
    }

    @Test("the directory and its parents are created")
    func createsDirectory() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nested = root + "/a/b/outbox/"
        let transport = try FileTransport(directory: nested)
        #expect(transport.directory == root + "/a/b/outbox")
        #expect(transport.send(MessageComposer(messageIDKey: .testing).compose(.sample())) == .sent(providerID: root + "/a/b/outbox/d-123-intro.eml"))
        #expect(FileManager.default.fileExists(atPath: root + "/a/b/outbox/d-123-intro.eml"))
    }

    @Test("a path that cannot be a directory is a clear init error")
    func initFailsOnFile() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(FileManager.default.createFile(atPath: root + "/file", contents: Data()))
        for path in [root + "/file", root + "/file/outbox"] {
            let error = try #require(throws: FileTransportError.self) { try FileTransport(directory: path) }
            #expect(error.description.contains("cannot use outbox directory"))
            #expect(error.description.contains(root + "/file"))
        }
    }

    @Test("an outbox that became unusable gives a transport fault naming the path and reason")
    func unwritableDirectory() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let directory = root + "/outbox"
        let transport = try FileTransport(directory: directory)
        // Permission bits do not stop root (tests may run as root in containers), so replace the
        // directory with a plain file instead: every open below it fails with ENOTDIR.
        try FileManager.default.removeItem(atPath: directory)
        #expect(FileManager.default.createFile(atPath: directory, contents: Data()))

        let outcome = transport.send(MessageComposer(messageIDKey: .testing).compose(.sample()))

        guard case .transportFault(let reason) = outcome else {
            Issue.record("expected a transport fault, got \(outcome)")
            return
        }
        #expect(reason.contains(directory + "/"))
        #expect(reason.contains(String(cString: strerror(ENOTDIR))))
    }

    @Test("the null transport discards and reports success")
    func nullTransport() {
        let transport: any MailTransport = NullTransport()
        #expect(transport.name == "null")
        #expect(transport.send(MessageComposer(messageIDKey: .testing).compose(.sample())) == .sent(providerID: nil))
    }
}

@Suite("file transport housekeeping")
struct FileTransportHousekeepingTests {
    @Test("temporary files abandoned by a killed process are removed at start once they are old")
    func abandonedTemporaryFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqd-housekeeping-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let old = directory + "/.k1.eml.tmp-OLD"
        let young = directory + "/.k2.eml.tmp-YOUNG"
        _ = FileManager.default.createFile(atPath: old, contents: Data("partial".utf8))
        _ = FileManager.default.createFile(atPath: young, contents: Data("partial".utf8))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3_600)], ofItemAtPath: old)
        _ = try FileTransport(directory: directory)
        #expect(!FileManager.default.fileExists(atPath: old))
        #expect(FileManager.default.fileExists(atPath: young), "a write in progress elsewhere must be left alone")
    }
}
