// The varlink wire format: NUL-terminated JSON objects on a stream socket.
// A call is {"method": "iface.Method", "parameters": {...}, "more": true?,
// "oneway": true?}; a reply is {"parameters": {...}, "continues": true?} or
// {"error": "iface.ErrorName", "parameters": {...}}. See https://varlink.org.

/// The interface description kept in the repository, served by
/// org.varlink.service.GetInterfaceDescription.
public let managerInterfaceName = "io.tessera.Manager"
public let managerInterfaceDescription = String(
    decoding: PackageResources.io_tessera_Manager_varlink, as: UTF8.self)

public let serviceInterfaceName = "org.varlink.service"
public let serviceInterfaceDescription = """
    # The Varlink Service Interface is provided by every varlink service. It
    # describes the service and the interfaces it implements.
    interface org.varlink.service

    # Get a list of all the interfaces a service provides and information
    # about the implementation.
    method GetInfo() -> (
      vendor: string,
      product: string,
      version: string,
      url: string,
      interfaces: []string
    )

    # Get the description of an interface that is implemented by this service.
    method GetInterfaceDescription(interface: string) -> (description: string)

    # The requested interface was not found.
    error InterfaceNotFound (interface: string)

    # The requested method was not found
    error MethodNotFound (method: string)

    # The interface defines the requested method, but the supplied parameters
    # do not conform to its definition.
    error InvalidParameter (parameter: string)

    # Client is denied access
    error PermissionDenied ()

    # Method is expected to be called with 'more' set to true, but wasn't
    error ExpectedMore ()

    """

/// A varlink call as received by a server or sent by a client.
public struct VarlinkCall: Sendable {
    public var method: String
    public var parameters: JSON
    public var more: Bool
    public var oneway: Bool

    public init(method: String, parameters: JSON = .object([]), more: Bool = false, oneway: Bool = false) {
        self.method = method
        self.parameters = parameters
        self.more = more
        self.oneway = oneway
    }

    /// Decodes a call; the reason names what is wrong for the error reply.
    public static func decode(_ message: JSON) -> Result<VarlinkCall, VarlinkCallDecodeError> {
        guard case .object = message else { return .failure(.notAnObject) }
        guard let method = message["method"]?.stringValue, !method.isEmpty else { return .failure(.missingMethod) }
        let parameters = message["parameters"] ?? .object([])
        guard case .object = parameters else { return .failure(.parametersNotAnObject(method)) }
        return .success(
            VarlinkCall(
                method: method, parameters: parameters,
                more: message["more"]?.boolValue ?? false,
                oneway: message["oneway"]?.boolValue ?? false))
    }

    public var json: JSON {
        var members: [(String, JSON)] = [("method", .string(method))]
        if case .object(let p) = parameters, !p.isEmpty { members.append(("parameters", parameters)) }
        if more { members.append(("more", true)) }
        if oneway { members.append(("oneway", true)) }
        return .object(members)
    }
}

public enum VarlinkCallDecodeError: Error, Sendable {
    case notAnObject
    case missingMethod
    case parametersNotAnObject(String)
}

/// A varlink reply: parameters, or a named error with parameters.
public struct VarlinkReply: Sendable {
    public var parameters: JSON
    public var error: String?
    public var continues: Bool

    public init(parameters: JSON = .object([]), error: String? = nil, continues: Bool = false) {
        self.parameters = parameters
        self.error = error
        self.continues = continues
    }

    public static func failure(_ error: String, _ parameters: JSON = .object([])) -> VarlinkReply {
        VarlinkReply(parameters: parameters, error: error)
    }

    public var json: JSON {
        var members: [(String, JSON)] = []
        if let error { members.append(("error", .string(error))) }
        members.append(("parameters", parameters))
        if continues { members.append(("continues", true)) }
        return .object(members)
    }

    public init?(json: JSON) {
        guard case .object = json else { return nil }
        self.parameters = json["parameters"] ?? .object([])
        self.error = json["error"]?.stringValue
        self.continues = json["continues"]?.boolValue ?? false
    }
}

/// Splits a byte stream into NUL-terminated messages, refusing any message
/// longer than `maximumMessageSize` so a peer cannot make us buffer without
/// bound.
public struct VarlinkFramer: Sendable {
    public let maximumMessageSize: Int
    private var pending: [UInt8] = []

    public init(maximumMessageSize: Int) {
        self.maximumMessageSize = maximumMessageSize
    }

    public enum FramingError: Error, Sendable {
        case messageTooLong(Int)
    }

    /// Appends received bytes and returns the complete messages they finish.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) throws(FramingError) -> [[UInt8]] {
        var messages: [[UInt8]] = []
        var start = 0
        for i in 0..<bytes.count where bytes[i] == 0 {
            if pending.isEmpty {
                messages.append(Array(bytes[start..<i]))
            } else {
                pending.append(contentsOf: bytes[start..<i])
                messages.append(pending)
                pending.removeAll(keepingCapacity: false)
            }
            start = i + 1
        }
        if start < bytes.count {
            pending.append(contentsOf: bytes[start..<bytes.count])
        }
        if pending.count > maximumMessageSize {
            throw .messageTooLong(pending.count)
        }
        return messages
    }

    public var bufferedByteCount: Int { pending.count }
}

extension JSON {
    /// The bytes of one varlink message: compact JSON and the terminating NUL.
    public var varlinkFrame: [UInt8] {
        var bytes = Array(serialized().utf8)
        bytes.append(0)
        return bytes
    }
}
