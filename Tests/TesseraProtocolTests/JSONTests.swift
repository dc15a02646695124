// The JSON codec and the varlink framing, which every byte of the control
// socket passes through.

import Testing

@testable import TesseraProtocol

@Suite("JSON")
struct JSONTests {
    @Test(
        "values round-trip through text",
        arguments: [
            "null", "true", "false", "0", "-12", "9223372036854775807", "1.5", "\"\"", "\"a\\\"b\\\\c\\n\"",
            "[]", "[1,[2,[3]]]", "{}", "{\"a\":1,\"b\":[true,null],\"c\":{\"d\":\"e\"}}",
        ])
    func roundTrip(text: String) throws {
        let value = try JSON.parse(text)
        #expect(try JSON.parse(value.serialized()) == value)
    }

    @Test("integers, floats and booleans stay apart")
    func types() throws {
        let value = try JSON.parse("{\"i\": 3, \"f\": 3.25, \"b\": true, \"big\": 12345678901234}")
        #expect(value["i"] == .int(3))
        #expect(value["f"] == .double(3.25))
        #expect(value["b"] == .bool(true))
        #expect(value["big"]?.intValue == 12_345_678_901_234)
        #expect(value["b"]?.intValue == nil)
    }

    @Test(
        "escapes and unicode decode",
        arguments: [
            ("\"\\u00e9\"", "é"), ("\"\\ud83d\\ude00\"", "😀"), ("\"tab\\there\"", "tab\there"), ("\"é\"", "é"),
        ])
    func escapes(text: String, expected: String) throws {
        #expect(try JSON.parse(text) == .string(expected))
    }

    @Test("control characters are escaped on output")
    func controlCharacters() {
        #expect(JSON.string("a\u{1}b\nc").serialized() == "\"a\\u0001b\\nc\"")
    }

    @Test(
        "malformed input is rejected with an offset",
        arguments: [
            "", "{", "[1,]", "{\"a\" 1}", "tru", "\"unterminated", "01x", "{\"a\":1}junk", "\"\\ud800\"", "[1 2]",
            "\"\u{1}\"", "-", "\"\\q\"",
        ])
    func malformed(text: String) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test("nesting deeper than the limit is refused, not recursed into")
    func depthLimit() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
        let fine = String(repeating: "[", count: 10) + String(repeating: "]", count: 10)
        #expect(throws: Never.self) { try JSON.parse(fine) }
    }
}

@Suite("Varlink framing")
struct FramingTests {
    @Test("messages split on NUL across reads")
    func splitting() throws {
        var framer = VarlinkFramer(maximumMessageSize: 100)
        let first = try Array("{\"a\":1}\0{\"b\"".utf8).withUnsafeBytes { try framer.append($0) }
        #expect(first.map { String(decoding: $0, as: UTF8.self) } == ["{\"a\":1}"])
        let second = try Array(":2}\0\0".utf8).withUnsafeBytes { try framer.append($0) }
        #expect(second.map { String(decoding: $0, as: UTF8.self) } == ["{\"b\":2}", ""])
        #expect(framer.bufferedByteCount == 0)
    }

    @Test("a message over the limit is refused")
    func limit() {
        var framer = VarlinkFramer(maximumMessageSize: 10)
        #expect(throws: VarlinkFramer.FramingError.self) {
            _ = try Array(repeating: UInt8(ascii: "x"), count: 11).withUnsafeBytes { try framer.append($0) }
        }
    }

    @Test("calls decode, and what is not a call is named")
    func calls() throws {
        let call = try VarlinkCall.decode(try JSON.parse("{\"method\":\"a.B\",\"parameters\":{\"x\":1},\"more\":true}"))
            .get()
        #expect(call.method == "a.B" && call.more && call.parameters["x"] == .int(1))
        #expect(throws: VarlinkCallDecodeError.self) { try VarlinkCall.decode(.array([])).get() }
        #expect(throws: VarlinkCallDecodeError.self) { try VarlinkCall.decode(["parameters": [:]]).get() }
        #expect(throws: VarlinkCallDecodeError.self) {
            try VarlinkCall.decode(["method": "a.B", "parameters": "no"]).get()
        }
    }

    @Test("the interface description served is the file in the repository")
    func interfaceFile() {
        #expect(managerInterfaceDescription.contains("interface io.tessera.Manager"))
        #expect(managerInterfaceDescription.contains("method WatchRun(id: int) -> (run: Run)"))
    }
}

@Suite("Base64")
struct Base64Tests {
    @Test(
        "encodes as RFC 4648 does, and decodes back",
        arguments: [
            ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ])
    func vectors(_ pair: (String, String)) {
        #expect(Base64.encode(Array(pair.0.utf8)) == pair.1)
        #expect(Base64.decode(pair.1) == Array(pair.0.utf8))
    }

    @Test("bytes that are not UTF-8 survive")
    func binary() {
        let bytes: [UInt8] = [0xff, 0xfe, 0x00, 0x1b, 0x80]
        #expect(Base64.decode(Base64.encode(bytes)) == bytes)
    }

    @Test("text that is not base64 is refused", arguments: ["Zg=", "Z===", "Zm9v!", "=Zm9", "Zg==Zg=="])
    func refused(_ text: String) {
        #expect(Base64.decode(text) == nil)
    }
}
