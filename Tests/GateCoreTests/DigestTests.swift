import Foundation
import GateCore
import Testing

@Suite("Digest")
struct DigestTests {
    @Test(
        "SHA-256 test vectors (FIPS 180-2)",
        arguments: [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
        ])
    func sha256(text: String, hex: String) {
        #expect(Digest.sha256Hex(text) == hex)
        #expect(Digest.sha256Hex(Data(text.utf8)) == hex)
    }

    @Test("Text is hashed as UTF-8")
    func hashesUTF8() {
        #expect(Digest.sha256Hex("é") == Digest.sha256Hex(Data([0xC3, 0xA9])))
        #expect(Digest.sha256Hex("é") != Digest.sha256Hex(Data([0xE9])))
    }

    @Test(
        "constantTimeEquals",
        arguments: [
            ("", "", true),
            ("a", "a", true),
            ("cs_live_0123456789", "cs_live_0123456789", true),
            ("héllo", "héllo", true),
            ("a", "b", false),
            ("", "a", false),
            ("abc", "abcd", false),
            ("abcd", "abc", false),
            ("cs_live_0123456789", "cs_live_0123456788", false),
            ("Xs_live_0123456789", "cs_live_0123456789", false),
            ("ABC", "abc", false),
            ("é", "e\u{301}", false),
        ])
    func constantTimeEquals(lhs: String, rhs: String, equal: Bool) {
        #expect(Digest.constantTimeEquals(lhs, rhs) == equal)
        #expect(Digest.constantTimeEquals(rhs, lhs) == equal)
    }
}
