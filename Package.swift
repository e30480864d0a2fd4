// swift-tools-version: 6.2
import PackageDescription

// One direction of dependency: executable → daemon → store/delivery → engine, with C at the edges;
// Mail (the message format, composed and parsed) sits below both the engine and Delivery and
// depends on nothing of ours.
let package = Package(
    name: "seqd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "seqd", targets: ["seqd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["YAML"]),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(name: "Postgres", dependencies: ["CLibPQ"]),
        // RFC 5322/MIME composition and parsing: the message format, with no seqd decisions in it.
        .target(name: "Mail", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "SequenceEngine", dependencies: ["Mail", .product(name: "Yams", package: "Yams")]),
        .target(
            name: "SequenceStore",
            dependencies: ["Postgres", "SequenceEngine", "Mail", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(name: "Delivery", dependencies: ["Mail", "CCurl", .product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "SeqdConfig",
            dependencies: [
                "SequenceEngine",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "SequenceDaemon",
            dependencies: [
                "SequenceStore", "SeqdConfig", "Delivery", "Mail",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The application layer: one function per operator action and query, for the CLI and the
        // API alike. The front ends below reach the database only through it (ArchitectureTests).
        .target(name: "SeqdApplication", dependencies: ["Postgres", "SequenceStore", "SequenceEngine", "Delivery", "Mail"]),
        .target(
            name: "SequenceHTTP",
            dependencies: [
                "SeqdApplication", "SequenceStore", "SequenceEngine", "Delivery", "Mail", "SeqdConfig",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "seqd",
            dependencies: [
                "SeqdApplication", "SequenceDaemon", "SequenceHTTP", "SequenceStore", "SeqdConfig", "Delivery", "Mail",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["Postgres", "SequenceStore", "Delivery", "Mail"], path: "Tests/TestSupport"),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport"]),
        .testTarget(name: "MailTests", dependencies: ["Mail", "TestSupport"]),
        .testTarget(name: "SequenceEngineTests", dependencies: ["SequenceEngine", "Mail"]),
        .testTarget(name: "SequenceStoreTests", dependencies: ["SequenceStore", "SequenceEngine", "Mail", "TestSupport"]),
        .testTarget(name: "DeliveryTests", dependencies: ["Delivery", "Mail", "TestSupport"]),
        .testTarget(name: "SeqdConfigTests", dependencies: ["SeqdConfig"]),
        .testTarget(
            name: "SequenceDaemonTests",
            dependencies: ["SequenceDaemon", "SequenceStore", "SequenceEngine", "Mail", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "SequenceHTTPTests",
            dependencies: [
                "SequenceHTTP", "SequenceStore", "SequenceEngine", "Delivery", "Mail", "TestSupport", "Postgres",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .testTarget(name: "seqdTests", dependencies: ["TestSupport", "Postgres", "SequenceStore", "Mail"]),
    ]
)

// Strict settings for every target: Swift 6 language mode and complete concurrency checking.
for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.swiftLanguageMode(.v6))
    target.swiftSettings = settings
}
