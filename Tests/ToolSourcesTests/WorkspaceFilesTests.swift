import AgentRuntime
import CountersignTesting
import Foundation
import GateCore
import Testing

@testable import ToolSources

@Suite struct WorkspaceFilesTests {
    let temporary: TemporaryDirectory
    let root: URL
    let context: ToolContext

    init() throws {
        temporary = try TemporaryDirectory("ws")
        root = temporary.url
        context = ToolContext(sessionID: "ses_t", callID: "call_t", confirmationID: nil, workspace: root)
    }

    @Test func writeReadListAppendDelete() async throws {
        let write = await WriteFileTool().run(["path": "notes/a.txt", "content": "one"], context: context)
        #expect(write.success)
        #expect(await ReadFileTool().run(["path": "notes/a.txt"], context: context).content == "one")
        let append = await AppendFileTool().run(["path": "notes/a.txt", "content": "two"], context: context)
        #expect(append.success)
        #expect(await ReadFileTool().run(["path": "notes/a.txt"], context: context).content == "one\ntwo\n")
        #expect(await ListFilesTool().run([:], context: context).content == "notes/")
        #expect(await ListFilesTool().run(["path": "notes"], context: context).content == "a.txt")
        #expect(await DeleteFileTool().run(["path": "notes/a.txt"], context: context).success)
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("notes/a.txt").path))
        #expect(!(await DeleteFileTool().run(["path": "notes/a.txt"], context: context).success))
    }

    @Test(arguments: ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "~/x", "", "notes/../../x"])
    func pathsOutsideTheWorkspaceAreRefused(path: String) async throws {
        let output = await WriteFileTool().run(["path": .string(path), "content": "x"], context: context)
        #expect(!output.success)
        let parent = root.deletingLastPathComponent()
        #expect(!FileManager.default.fileExists(atPath: parent.appendingPathComponent("escape.txt").path))
    }

    @Test func symlinksLeavingTheWorkspaceAreRefused() async throws {
        let outsideFolder = try TemporaryDirectory("outside")
        let outside = outsideFolder.url
        try "secret".write(to: outside.appendingPathComponent("secret.txt"), atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(
            at: root.appendingPathComponent("link"), withDestinationURL: outside)
        try FileManager.default.createSymbolicLink(
            at: root.appendingPathComponent("file-link"),
            withDestinationURL: outside.appendingPathComponent("secret.txt"))
        let read = await ReadFileTool().run(["path": "link/secret.txt"], context: context)
        #expect(!read.success)
        #expect(read.content.contains("outside"))
        #expect(!(await ReadFileTool().run(["path": "file-link"], context: context).success))
        let write = await WriteFileTool().run(["path": "link/new.txt", "content": "x"], context: context)
        #expect(!write.success)
        #expect(!FileManager.default.fileExists(atPath: outside.appendingPathComponent("new.txt").path))
        let delete = await DeleteFileTool().run(["path": "file-link"], context: context)
        #expect(!delete.success)
        #expect(FileManager.default.fileExists(atPath: outside.appendingPathComponent("secret.txt").path))
    }

    @Test func symlinksInsideTheWorkspaceAreFollowed() async throws {
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("real"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            at: root.appendingPathComponent("alias"), withDestinationURL: root.appendingPathComponent("real"))
        #expect(await WriteFileTool().run(["path": "alias/x.txt", "content": "ok"], context: context).success)
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("real/x.txt").path))
    }

    @Test func chainsOfLinksAndDanglingLinksAreRefused() async throws {
        let outsideFolder = try TemporaryDirectory("outside")
        // inner -> outer -> a folder outside: the first link stays inside, the chain does not.
        try FileManager.default.createSymbolicLink(
            at: root.appendingPathComponent("outer"), withDestinationURL: outsideFolder.url)
        try FileManager.default.createSymbolicLink(
            at: root.appendingPathComponent("inner"), withDestinationURL: root.appendingPathComponent("outer"))
        let chained = await WriteFileTool().run(["path": "inner/x.txt", "content": "x"], context: context)
        #expect(!chained.success)
        #expect(chained.content.contains("outside"))
        #expect(!FileManager.default.fileExists(atPath: outsideFolder.url.appendingPathComponent("x.txt").path))
        // A link to nothing proves nothing about where it leads.
        try FileManager.default.createSymbolicLink(
            atPath: root.appendingPathComponent("dangling").path, withDestinationPath: "/nonexistent/countersign")
        #expect(!(await WriteFileTool().run(["path": "dangling/x.txt", "content": "x"], context: context).success))
        #expect(!(await AppendFileTool().run(["path": "dangling", "content": "x"], context: context).success))
    }

    @Test func aRootReachedThroughALinkWorks() async throws {
        let links = try TemporaryDirectory("links")
        let linkedRoot = links.url.appendingPathComponent("ws")
        try FileManager.default.createSymbolicLink(at: linkedRoot, withDestinationURL: root)
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("real"), withIntermediateDirectories: true)
        // An absolute link that names the real folder through the linked root.
        try FileManager.default.createSymbolicLink(
            at: root.appendingPathComponent("alias"), withDestinationURL: linkedRoot.appendingPathComponent("real"))
        let linked = ToolContext(sessionID: "ses_t", callID: "call_t", confirmationID: nil, workspace: linkedRoot)
        #expect(await WriteFileTool().run(["path": "alias/y.txt", "content": "ok"], context: linked).success)
        #expect(await ReadFileTool().run(["path": "real/y.txt"], context: context).content == "ok")
    }

    @Test func writesReplaceWholeFilesAndLeaveNoTemporaryFiles() async throws {
        #expect(await WriteFileTool().run(["path": "a/b/c.txt", "content": "first"], context: context).success)
        #expect(await WriteFileTool().run(["path": "a/b/c.txt", "content": "2nd"], context: context).success)
        #expect(await ReadFileTool().run(["path": "a/b/c.txt"], context: context).content == "2nd")
        #expect(await AppendFileTool().run(["path": "a/log.txt", "content": "one"], context: context).success)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("a/b").path) == ["c.txt"])
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("a").path).sorted() == [
                "b", "log.txt",
            ])
        // A file where a folder is needed: an error for the model, nothing written.
        let blocked = await WriteFileTool().run(["path": "a/log.txt/d.txt", "content": "x"], context: context)
        #expect(!blocked.success)
        #expect(blocked.content.contains("Could not"))
        #expect(await ReadFileTool().run(["path": "a/log.txt"], context: context).content == "one\n")
    }

    @Test func httpFetchRefusesNonHTTPAndMetadataAddresses() async {
        let tool = HTTPFetchTool()
        #expect(tool.descriptor.flags.openWorld)
        #expect(!(await tool.run(["url": "file:///etc/passwd"], context: context).success))
        #expect(!(await tool.run(["url": "http://169.254.169.254/latest/meta-data"], context: context).success))
    }
}
