import Foundation
import GateCore

/// A fresh folder under the system temporary folder, deleted with everything in it when
/// the last reference goes away. A test suite (a struct, made anew for each test) keeps
/// one in a stored property, so each test's files go when the test ends.
public final class TemporaryDirectory: Sendable {
    public let url: URL

    /// Creates `<tmp>/<prefix>-t_<random>`.
    public init(_ prefix: String) throws {
        url = try Self.create(prefix)
    }

    /// Creates `<tmp>/<prefix>-t_<random>` and leaves deleting it to the caller.
    public static func create(_ prefix: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "\(prefix)-\(Identifier.make("t", length: 10))", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    public var path: String { url.path }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }
}
