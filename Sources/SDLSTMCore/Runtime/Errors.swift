/// Every failure the core reports; the ABI maps each case to one `sdlstm_status`.
public enum SDLSTMError: Error, Equatable {
    case invalid(String)
    case outOfMemory(String)
    case io(String)
    case format(String)
    case numeric(String)
    case state(String)

    public var message: String {
        switch self {
        case .invalid(let m), .outOfMemory(let m), .io(let m), .format(let m), .numeric(let m), .state(let m):
            return m
        }
    }
}
