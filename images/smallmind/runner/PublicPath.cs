// The "public" path: SmallMind's public API only (namespace SmallMind, src/SmallMind/PublicApi.cs),
// the way a .NET application uses it: SmallMindFactory.Create with GGUF import (the GGUF is
// converted to SMQ in GgufCacheDirectory, then loaded), one text-generation session, one
// GenerateStreaming call per generation. ../README.md cites the upstream line of each call and
// what SmallMind does behind it (a GPT-2-small-shaped model for every GGUF).
using SmallMind;

namespace OrchestrateSmallMind;

internal sealed class PublicPath : IGenerator
{
    private const int Seed = 42;
    private const int MaxContextTokens = 2048;  // SmallMind's default; below it every generation fails (README.md)
    private readonly ISmallMindEngine _engine;
    private readonly ITextGenerationSession _session;
    private readonly int _genTokens;
    private readonly int _threads;

    public PublicPath(string modelPath, int threads, int genTokens)
    {
        _genTokens = genTokens;
        _threads = threads;
        _engine = SmallMindFactory.Create(new SmallMindOptions
        {
            ModelPath = modelPath,
            AllowGgufImport = true,
            GgufCacheDirectory = "/tmp/smallmind-gguf-cache",
            ThreadCount = threads,  // checked and stored by SmallMind, never used: recorded as such
            MaxContextTokens = MaxContextTokens,
            EnableKvCache = true,
        });
        // Greedy: top-k 1 at temperature 1 (temperature 0 passes this API's check but SmallMind's
        // inference options refuse it); top-p 1 turns nucleus filtering off.
        _session = _engine.CreateTextGenerationSession(new TextGenerationOptions
        {
            Temperature = 1.0f,
            TopK = 1,
            TopP = 1.0f,
            MaxOutputTokens = genTokens,
        });
    }

    public Dictionary<string, object?> Describe(string prompt)
    {
        EngineCapabilities caps = _engine.GetCapabilities();
        return new Dictionary<string, object?>
        {
            ["api"] = "SmallMindFactory.Create + ITextGenerationSession.GenerateStreaming",
            ["options"] = new Dictionary<string, object?>
            {
                ["AllowGgufImport"] = true, ["EnableKvCache"] = true, ["MaxContextTokens"] = MaxContextTokens,
                ["ThreadCount"] = _threads, ["Temperature"] = 1.0, ["TopK"] = 1, ["TopP"] = 1.0,
                ["MaxOutputTokens"] = _genTokens, ["Seed"] = Seed,
            },
            ["capabilities"] = new Dictionary<string, object?>
            {
                ["SupportsStreaming"] = caps.SupportsStreaming, ["SupportsKvCache"] = caps.SupportsKvCache,
                ["MaxContextTokens"] = caps.MaxContextTokens, ["ModelFormat"] = caps.ModelFormat,
                ["Quantization"] = caps.Quantization, ["TokenizerId"] = caps.TokenizerId,
            },
        };
    }

    public async Task<Repetition> GenerateAsync(string prompt)
    {
        var times = new List<double>();
        var ids = new List<int>();
        double sent = Clock.Now();
        await foreach (TokenResult token in _session.GenerateStreaming(new TextGenerationRequest
        {
            Prompt = prompt.AsMemory(),
            MaxOutputTokensOverride = _genTokens,
            Seed = Seed,
        }))
        {
            times.Add(Clock.Now());
            ids.Add(token.TokenId);
        }
        return new Repetition(sent, times, ids, null);  // the public stream does not say why it ended
    }

    public void Dispose()
    {
        _session.Dispose();
        _engine.Dispose();
    }
}
