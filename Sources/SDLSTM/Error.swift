import CSDLSTM

/// A failed library call: the status the C ABI returned and the message of `sdlstm_last_error()`.
public struct SDLSTMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The kind of failure, one case per non-OK `sdlstm_status`.
    public enum Status: Sendable, Equatable, CaseIterable {
        /// `SDLSTM_E_INVALID`: a size or id out of range, a bad enum value, a wrong array length.
        case invalid
        /// `SDLSTM_E_NOMEM`: an allocation failed.
        case outOfMemory
        /// `SDLSTM_E_IO`: a file could not be read or written.
        case io
        /// `SDLSTM_E_FORMAT`: a file is not what it claims to be.
        case format
        /// `SDLSTM_E_NUMERIC`: a non-finite loss or gradient; the update was skipped.
        case numeric
        /// `SDLSTM_E_STATE`: the call does not fit the model's current state.
        case state

        /// The C status code of this case.
        public var cStatus: sdlstm_status {
            switch self {
            case .invalid: SDLSTM_E_INVALID
            case .outOfMemory: SDLSTM_E_NOMEM
            case .io: SDLSTM_E_IO
            case .format: SDLSTM_E_FORMAT
            case .numeric: SDLSTM_E_NUMERIC
            case .state: SDLSTM_E_STATE
            }
        }

        /// The case for a non-OK C status; nil for `SDLSTM_OK` and unknown codes.
        public init?(_ status: sdlstm_status) {
            guard let match = Status.allCases.first(where: { $0.cStatus == status }) else { return nil }
            self = match
        }
    }

    /// What kind of failure this is.
    public let status: Status
    /// What went wrong, in the library's words.
    public let message: String

    public init(_ status: Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String {
        "\(String(cString: sdlstm_status_name(status.cStatus))): \(message)"
    }

    /// Throws the error for `status`, with the message of `sdlstm_last_error()`, unless it is OK.
    /// Call it directly after the C call, on the same thread.
    static func check(_ status: sdlstm_status) throws(SDLSTMError) {
        if status == SDLSTM_OK { return }
        let message = String(cString: sdlstm_last_error())
        guard let kind = Status(status) else {
            // Not a code of this header's version: report it rather than drop it.
            throw SDLSTMError(.invalid, "unknown status \(status.rawValue): \(message)")
        }
        throw SDLSTMError(kind, message)
    }

    /// Converts a Swift integer argument to int32, or throws `.invalid` naming it.
    static func int32(_ value: Int, _ name: String) throws(SDLSTMError) -> Int32 {
        guard let converted = Int32(exactly: value) else {
            throw SDLSTMError(.invalid, "\(name) = \(value) does not fit in int32")
        }
        return converted
    }
}
