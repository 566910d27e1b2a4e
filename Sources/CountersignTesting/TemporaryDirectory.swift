import Foundation
import GateCore

/// A fresh folder under the system temporary folder, deleted with everything in it when
/// the last reference goes away. A test suite (a struct, made anew for each test) keeps
/// one in a stored property, so each test's files go when the test ends.
public final class TemporaryDirectory: Sendable {
    public let url: URL

    /// Creates `<tmp>/<prefix>-t_<random>`.
    public init(_ prefix: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "\(prefix)-\(Identifier.make("t", length: 10))", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public var path: String { url.path }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }
}
