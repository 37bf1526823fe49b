import Foundation
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzTargets.run("FuzzOpenAIRequest", Data(bytes: start, count: count))
    return 0
}
