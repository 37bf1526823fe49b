import Foundation

/// How `peft prune` chooses the weights to zero.
public enum PruneMethod: String, CaseIterable, Sendable, Codable {
    /// |W|, one threshold per matrix (N:M within each group of inputs).
    case magnitude
    /// |W| * sqrt(sum of x^2 over the calibration tokens), compared within each output row (locuslab/wanda).
    case wanda
    /// Optimal-brain-surgeon masks and updates of the remaining weights from H = 2/N X X^T (IST-DASLab/sparsegpt).
    case sparsegpt
    /// Whole decoder layers removed (ShortGPT's block influence, or the block of Gromov et al.'s smallest angular
    /// distance).
    case layers
}

/// Which weights of a matrix may be zeroed together.
public enum SparsityPattern: Sendable, Equatable, CustomStringConvertible {
    /// Any `sparsity` share of the weights.
    case unstructured
    /// `n` of every `m` consecutive inputs of a row are zeroed (2:4 and 4:8 are half of the weights), as the
    /// reference implementations' N:M masks zero `prune_n` of every `prune_m`.
    case nOfM(n: Int, m: Int)

    /// Parses `unstructured` or `N:M` (0 < N < M <= 256).
    public init(parsing text: String) throws {
        if text == "unstructured" { self = .unstructured; return }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let n = Int(parts[0]), let m = Int(parts[1]), n > 0, n < m, m <= 256 else {
            throw PruneError.options("--pattern '\(text)' is neither 'unstructured' nor N:M with 0 < N < M <= 256 (e.g. 2:4, 4:8)")
        }
        self = .nOfM(n: n, m: m)
    }

    public var description: String {
        switch self {
        case .unstructured: "unstructured"
        case .nOfM(let n, let m): "\(n):\(m)"
        }
    }

    /// The share of weights this pattern zeroes (nil: the requested sparsity).
    public var impliedSparsity: Double? {
        if case .nOfM(let n, let m) = self { return Double(n) / Double(m) }
        return nil
    }
}

/// The settings of one pruning run.
public struct PruneSettings: Sendable {
    public var method: PruneMethod
    public var sparsity: Double
    public var pattern: SparsityPattern
    /// SparseGPT: columns per block of the lazy update, and the dampening as a share of the mean Hessian diagonal.
    public var blockSize = 128
    public var percentDamp = 0.01
    /// `layers`: remove this many single layers with the lowest block influence ...
    public var removeLayers: Int?
    /// ... or this many consecutive layers at the smallest angular distance.
    public var removeBlock: Int?

    public init(method: PruneMethod, sparsity: Double = 0.5, pattern: SparsityPattern = .unstructured) {
        self.method = method
        self.sparsity = sparsity
        self.pattern = pattern
    }
}

public enum PruneError: Error, CustomStringConvertible {
    case options(String)
    case unsupported(String)
    case numerical(String)
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .options(let s): s
        case .unsupported(let s): s
        case .numerical(let s): s
        case .io(let path, let reason): "\(path): \(reason)"
        }
    }
}
