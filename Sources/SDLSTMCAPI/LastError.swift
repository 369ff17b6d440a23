import Glibc
import SDLSTMCore
import CSDLSTM

/// The thread-local message behind `sdlstm_last_error`, as SQLite and libgit2 keep theirs.
/// Each thread owns one malloc'd C string; the key's destructor frees it when the thread exits.
private let errorKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { free($0) }
    return key
}()

func setLastError(_ message: String) {
    let old = pthread_getspecific(errorKey)
    pthread_setspecific(errorKey, strdup(message))
    free(old)
}

func lastErrorMessage() -> UnsafePointer<CChar> {
    if let p = pthread_getspecific(errorKey) { return UnsafePointer(p.assumingMemoryBound(to: CChar.self)) }
    return cString("")
}

/// A literal's bytes live in the binary for its whole life: safe to hand to C forever.
func cString(_ s: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// Runs `body`, turning its error into a status and this thread's last-error message.
func translate(_ body: () throws(SDLSTMError) -> Void) -> sdlstm_status {
    do {
        try body()
        return SDLSTM_OK
    } catch {
        setLastError(error.message)
        return status(of: error)
    }
}

func fail(_ status: sdlstm_status, _ message: String) -> sdlstm_status {
    setLastError(message)
    return status
}

private func status(of error: SDLSTMError) -> sdlstm_status {
    switch error {
    case .invalid: return SDLSTM_E_INVALID
    case .outOfMemory: return SDLSTM_E_NOMEM
    case .io: return SDLSTM_E_IO
    case .format: return SDLSTM_E_FORMAT
    case .numeric: return SDLSTM_E_NUMERIC
    case .state: return SDLSTM_E_STATE
    }
}
