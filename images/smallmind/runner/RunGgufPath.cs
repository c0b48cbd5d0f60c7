// The "run-gguf" path: what SmallMind's own console command run-gguf does
// (src/SmallMind.Console/Commands/RunGgufCommand.cs): GgufModelLoader.LoadFromGguf builds the
// model the GGUF describes (Llama family: RoPE, RMSNorm, grouped-query attention, SwiGLU,
// tied embeddings; every weight dequantized to FP32) with the GGUF's own tokenizer, and an
// InferenceSession generates. Where this differs from run-gguf, and why, is in ../README.md:
// greedy sampling instead of run-gguf's temperature 0.7 / top-k 40 / top-p 0.95, streaming
// (GenerateStreamAsync) instead of GenerateAsync so each token id is stamped, and
// MaxInputTokens set to the context length (run-gguf's default of 2048 makes the session's own
// check refuse every model whose context is shorter).
using SmallMind.Runtime;
using SmallMind.Tokenizers;
using SmallMind.Transformers;

namespace OrchestrateSmallMind;

internal sealed class RunGgufPath : IGenerator
{
    private const int Seed = 42;  // run-gguf's default seed, also the seed of the random initial weights
    private readonly TransformerModel _model;
    private readonly ITokenizer _tokenizer;
    private readonly ModelConfig _config;
    private readonly ProductionInferenceOptions _options;

    public RunGgufPath(string modelPath, int genTokens)
    {
        (_model, _tokenizer, _config) = GgufModelLoader.LoadFromGguf(modelPath, Seed);
        _options = new ProductionInferenceOptions
        {
            MaxNewTokens = genTokens,
            Temperature = 1.0,  // greedy: top-k 1 (SmallMind refuses temperature 0)
            TopK = 1,
            TopP = 1.0,
            Seed = Seed,
            MaxContextTokens = _config.ContextLength,
            MaxInputTokens = _config.ContextLength,
        };
    }

    public Dictionary<string, object?> Describe(string prompt)
    {
        List<int> promptIds = _tokenizer.Encode(prompt);  // the call InferenceSession makes on the prompt
        return new Dictionary<string, object?>
        {
            ["api"] = "GgufModelLoader.LoadFromGguf + InferenceSession.GenerateStreamAsync (as run-gguf)",
            ["config"] = new Dictionary<string, object?>
            {
                ["Architecture"] = _config.Architecture, ["VocabSize"] = _config.VocabSize,
                ["ContextLength"] = _config.ContextLength, ["EmbeddingLength"] = _config.EmbeddingLength,
                ["BlockCount"] = _config.BlockCount, ["HeadCount"] = _config.HeadCount,
                ["HeadCountKv"] = _config.HeadCountKv, ["FeedForwardLength"] = _config.FeedForwardLength,
                ["RopeFreqBase"] = _config.RopeFreqBase, ["NormEps"] = _config.NormEps,
                ["UseRope"] = _config.UseRope, ["UseRmsNorm"] = _config.UseRmsNorm, ["UseSwiGlu"] = _config.UseSwiGlu,
            },
            ["parameters"] = _model.GetTotalParameterCount(),
            ["tokenizer"] = new Dictionary<string, object?>
            {
                ["type"] = _tokenizer.GetType().Name, ["name"] = _tokenizer.Info.Name,
                ["vocab_size"] = _tokenizer.VocabSize, ["bos"] = _tokenizer.Info.BosTokenId,
                ["eos"] = _tokenizer.Info.EosTokenId, ["add_bos"] = _tokenizer.Info.AddBos,
            },
            ["options"] = new Dictionary<string, object?>
            {
                ["MaxNewTokens"] = _options.MaxNewTokens, ["Temperature"] = _options.Temperature,
                ["TopK"] = _options.TopK, ["TopP"] = _options.TopP, ["Seed"] = _options.Seed,
                ["MaxContextTokens"] = _options.MaxContextTokens, ["MaxInputTokens"] = _options.MaxInputTokens,
            },
            ["prompt_ids"] = promptIds,
        };
    }

    public async Task<Repetition> GenerateAsync(string prompt)
    {
        // A session per generation, as the public API makes one per request; each starts from an
        // empty KV cache (the session resets it at prefill).
        using var session = new InferenceSession(_model, _tokenizer, _options, _config.ContextLength);
        var times = new List<double>();
        var ids = new List<int>();
        string? finish = null;
        double sent = Clock.Now();
        await foreach (GeneratedToken token in session.GenerateStreamAsync(prompt))
        {
            double now = Clock.Now();
            if (token.TokenId >= 0)  // -1 marks a timeout, not a token
            {
                times.Add(now);
                ids.Add(token.TokenId);
            }
            if (token.FinishReason != FinishReason.None)
            {
                finish = token.FinishReason.ToString();
            }
        }
        return new Repetition(sent, times, ids, finish);
    }

    public void Dispose()
    {
    }
}
