import Adapters
import Foundation
import GGUF
import Generation
import Kernels
import Tokenizer
import Transformer

/// A model directory opened for use: weights, tokenizer, sampling defaults and an optional adapter.
struct LoadedModel {
    let url: URL
    let model: TransformerModel
    let tokenizer: Tokenizer
    let sampling: SamplingOptions
    /// eos ids from generation_config.json, then config.json.
    let eosTokenIDs: [Int32]
    var adapter: TrainableAdapter?

    static func open(_ url: URL, dtype: DType, adapter adapterURL: URL? = nil, quantize: QuantType? = nil) throws -> LoadedModel {
        let model: TransformerModel, tokenizer: Tokenizer, sampling: SamplingOptions, eos: [Int32]
        if url.pathExtension.lowercased() == "gguf" {
            // One GGUF file (llama.cpp / Ollama): its matrices stay in their block format.
            let gguf = try GGUFModel(path: url.path)
            model = try gguf.transformer(dtype: dtype)
            tokenizer = try gguf.tokenizer()
            (sampling, eos) = (SamplingOptions(), [])
        } else {
            model = try TransformerModel.load(directory: url, dtype: dtype, quantize: quantize)
            tokenizer = try Tokenizer.load(directory: url)
            (sampling, eos) = try SamplingOptions.defaults(directory: url)
        }
        if let quantize, model.weights.quantType == nil { model.weights.quantize(quantize) }
        var loaded = LoadedModel(url: url, model: model, tokenizer: tokenizer, sampling: sampling,
                                 eosTokenIDs: eos.isEmpty ? model.config.eosTokenIDs.compactMap { Int32(exactly: $0) } : eos,
                                 adapter: nil)
        if let adapterURL {
            let adapter = try AdapterFiles.load(from: adapterURL, model: model)
            model.adapter = adapter
            loaded.adapter = adapter
        }
        return loaded
    }

    /// Stop ids for generation: the chat format's end of turn and the model's eos ids.
    func stopIDs(_ formatter: ChatFormatter?) -> [Int32] {
        var seen = Set<Int32>()
        return ((formatter?.stopIDs ?? []) + eosTokenIDs).filter { seen.insert($0).inserted }
    }
}
