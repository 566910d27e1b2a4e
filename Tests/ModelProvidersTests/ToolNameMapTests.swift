import Testing

@testable import ModelProviders

@Suite struct ToolNameMapTests {
    @Test(arguments: [
        ("write_file", true), ("a-b_9", true), ("Z", true), (String(repeating: "x", count: 64), true),
        ("", false), (String(repeating: "x", count: 65), false), ("files.write", false), ("écrire", false),
        ("a b", false), ("tool/1", false), ("ﬁle", false),
    ])
    func validNamesAreASCIILettersDigitsUnderscoreAndDash(name: String, valid: Bool) {
        #expect(ToolNameMap.isValid(name) == valid)
    }

    @Test func invalidNamesGetUniqueWireNamesAndMapBack() {
        let names = ToolNameMap(["files.write", "files_write", "files/write", "read_file"])
        #expect(names.wire("files_write") == "files_write")
        #expect(names.wire("read_file") == "read_file")
        let dotted = names.wire("files.write")
        let slashed = names.wire("files/write")
        #expect(Set([dotted, slashed, "files_write"]).count == 3)
        #expect([dotted, slashed].allSatisfy(ToolNameMap.isValid))
        #expect(names.local(dotted) == "files.write")
        #expect(names.local(slashed) == "files/write")
    }
}
