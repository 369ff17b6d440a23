import CSDLSTM

/// The library version, "MAJOR.MINOR.PATCH" (`sdlstm_version()`); read it as `SDLSTM.version`.
public var version: String { String(cString: sdlstm_version()) }
