// LibYAML.swift
//
// Why this file exists: it is the only place that calls libyaml. It runs
// libyaml's event parser (yaml_parser_parse) over a byte buffer and hands each
// event on as a Swift `YAMLEvent`, so no C type reaches the rest of the module.
// libyaml counts lines and columns from 0; they become 1-based `Mark`s here,
// and nowhere else.

internal import CLibYAML

/// One libyaml parser event, with its strings copied out and its mark 1-based.
enum YAMLEvent {
    case documentStart(Mark)
    case documentEnd
    /// `tag` is the resolved tag when one was written (`!!str` arrives as
    /// `tag:yaml.org,2002:str`), nil otherwise.
    case scalar(value: String, style: ScalarStyle, tag: String?, hasAnchor: Bool, mark: Mark)
    case alias(mark: Mark)
    case sequenceStart(tag: String?, hasAnchor: Bool, mark: Mark)
    case sequenceEnd
    case mappingStart(tag: String?, hasAnchor: Bool, mark: Mark)
    case mappingEnd
    case streamEnd
}

/// A YAML syntax error as libyaml reports it.
struct YAMLSyntaxError: Error {
    var message: String
    var mark: Mark?
}

/// libyaml's event parser over a copy of the input.
final class YAMLEventParser {
    private let parser: UnsafeMutablePointer<yaml_parser_t>
    private let input: UnsafeMutableBufferPointer<UInt8>

    init(_ bytes: some Collection<UInt8>) {
        // libyaml rejects a null input pointer, so an empty input gets one byte.
        input = .allocate(capacity: max(bytes.count, 1))
        _ = input.initialize(from: bytes)
        parser = .allocate(capacity: 1)
        // Initialisation fails only when malloc does.
        precondition(yaml_parser_initialize(parser) == 1, "libyaml could not allocate a parser")
        yaml_parser_set_input_string(parser, input.baseAddress, bytes.count)
    }

    deinit {
        yaml_parser_delete(parser)
        parser.deallocate()
        input.deallocate()
    }

    /// The next event after the stream start. Call it no more after
    /// `.streamEnd` or an error.
    func next() throws(YAMLSyntaxError) -> YAMLEvent {
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(parser, &event) == 1 else {
                throw syntaxError()
            }
            defer { yaml_event_delete(&event) }
            let mark = Self.mark(event.start_mark)
            switch event.type {
            case YAML_STREAM_START_EVENT, YAML_NO_EVENT:
                continue
            case YAML_STREAM_END_EVENT:
                return .streamEnd
            case YAML_DOCUMENT_START_EVENT:
                return .documentStart(mark)
            case YAML_DOCUMENT_END_EVENT:
                return .documentEnd
            case YAML_ALIAS_EVENT:
                return .alias(mark: mark)
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                let value = String(
                    decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
                let style: ScalarStyle = scalar.style == YAML_PLAIN_SCALAR_STYLE ? .plain : .quoted
                return .scalar(
                    value: value, style: style, tag: Self.string(scalar.tag),
                    hasAnchor: scalar.anchor != nil, mark: mark)
            case YAML_SEQUENCE_START_EVENT:
                let start = event.data.sequence_start
                return .sequenceStart(tag: Self.string(start.tag), hasAnchor: start.anchor != nil, mark: mark)
            case YAML_SEQUENCE_END_EVENT:
                return .sequenceEnd
            case YAML_MAPPING_START_EVENT:
                let start = event.data.mapping_start
                return .mappingStart(tag: Self.string(start.tag), hasAnchor: start.anchor != nil, mark: mark)
            case YAML_MAPPING_END_EVENT:
                return .mappingEnd
            default:
                preconditionFailure("libyaml returned an unknown event type \(event.type.rawValue)")
            }
        }
    }

    /// libyaml's problem, its context and its position as one error, e.g.
    /// `invalid YAML: did not find expected key (while parsing a block mapping at 1:1)`.
    private func syntaxError() -> YAMLSyntaxError {
        let state = parser.pointee
        if state.error == YAML_MEMORY_ERROR {
            return YAMLSyntaxError(message: "libyaml ran out of memory", mark: nil)
        }
        var message = "invalid YAML: " + (Self.string(state.problem) ?? "unknown error")
        let mark: Mark
        if state.error == YAML_READER_ERROR {
            // Reader errors (bad UTF-8, control characters) carry a byte offset, not a mark.
            mark = markOfByte(at: min(state.problem_offset, input.count))
        } else {
            mark = Self.mark(state.problem_mark)
            if let context = Self.string(state.context) {
                let contextMark = Self.mark(state.context_mark)
                message += contextMark == mark ? " (\(context))" : " (\(context) at \(contextMark))"
            }
            if byte(at: mark) == UInt8(ascii: "\t") {
                message += "; indent with spaces, YAML does not allow tabs here"
            }
        }
        return YAMLSyntaxError(message: message, mark: mark)
    }

    /// The 1-based line and column (counted in characters) of a byte offset.
    private func markOfByte(at offset: Int) -> Mark {
        var line = 1
        var column = 1
        for byte in input.prefix(offset) {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {  // not a UTF-8 continuation byte
                column += 1
            }
        }
        return Mark(line: line, column: column)
    }

    /// The first byte of the character at `mark`, if the mark is inside the input.
    private func byte(at mark: Mark) -> UInt8? {
        var line = 1
        var column = 1
        for byte in input where byte & 0xC0 != 0x80 {  // the first byte of each character
            if line == mark.line && column == mark.column { return byte }
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return nil
    }

    private static func mark(_ mark: yaml_mark_t) -> Mark {
        Mark(line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    private static func string(_ pointer: UnsafePointer<CChar>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
    }
}
