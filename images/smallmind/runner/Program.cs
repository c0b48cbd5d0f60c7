// orchestrate's SmallMind engine: the part that talks to SmallMind, through its public API only.
//
// Usage: OrchestrateSmallMind MODEL THREADS GEN_TOKENS WARMUP REPETITIONS PROMPT_FILE MAX_CONTEXT
//
// Loads the model once (SmallMindFactory.Create, GGUF import allowed), opens one
// text-generation session (greedy through top-k 1 and a fixed seed: research found that
// temperature 0 passes the public validation but is rejected inside), and streams
// WARMUP + REPETITIONS generations of the same prompt text. Each token id is stamped with
// Stopwatch when GenerateStreaming yields it. Writes one JSON object per line on stdout;
// before the timed repetitions and after them it waits for a line on stdin, so that the
// Python runner (runner.py, the runner kit) brackets exactly the timed work with its
// per-thread CPU window. Everything else (job checks, prompt shaping, the RESULT) is
// runner.py's.
using System.Diagnostics;
using System.Text.Json;
using SmallMind;
using SmallMind.Public;

static double Now() => Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;

static void Emit(object value)
{
    Console.Out.WriteLine(JsonSerializer.Serialize(value));
    Console.Out.Flush();
}

if (args.Length != 7)
{
    Console.Error.WriteLine("usage: OrchestrateSmallMind MODEL THREADS GEN_TOKENS WARMUP REPETITIONS PROMPT_FILE MAX_CONTEXT");
    return 2;
}
string modelPath = args[0];
int threads = int.Parse(args[1]);
int genTokens = int.Parse(args[2]);
int warmup = int.Parse(args[3]);
int repetitions = int.Parse(args[4]);
string promptText = File.ReadAllText(args[5]);
int maxContext = int.Parse(args[6]);
const int Seed = 42;

double loadStart = Now();
using var engine = SmallMindFactory.Create(new SmallMindOptions
{
    ModelPath = modelPath,
    AllowGgufImport = true,
    GgufCacheDirectory = "/tmp/smallmind-gguf-cache",
    ThreadCount = threads,   // recorded as set; research found the engine never reads it
    MaxContextTokens = maxContext,
    EnableKvCache = true,
});
using var session = engine.CreateTextGenerationSession(new TextGenerationOptions
{
    Temperature = 1.0f,      // greedy comes from TopK = 1 (see above)
    TopK = 1,
    TopP = 1.0f,
    MaxOutputTokens = genTokens,
});
Emit(new Dictionary<string, object?>
{
    ["event"] = "loaded",
    ["load_s"] = Now() - loadStart,
    ["capabilities"] = engine.GetCapabilities()?.ToString(),
    ["thread_count_set"] = threads,
    ["processor_count"] = Environment.ProcessorCount,
    ["runtime"] = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
});

for (int i = 0; i < warmup + repetitions; i++)
{
    if (i == warmup)
    {
        Emit(new Dictionary<string, object?> { ["event"] = "timed-start" });
        Console.In.ReadLine();
    }
    var ids = new List<int>();
    var times = new List<double>();
    double sent = Now();
    await foreach (var token in session.GenerateStreaming(new TextGenerationRequest
    {
        Prompt = promptText.AsMemory(),
        MaxOutputTokensOverride = genTokens,
        Seed = Seed,
    }))
    {
        times.Add(Now());
        ids.Add(token.TokenId);
    }
    Emit(new Dictionary<string, object?>
    {
        ["event"] = "repetition", ["index"] = i, ["timed"] = i >= warmup, ["sent"] = sent,
        ["times"] = times, ["token_ids"] = ids,
    });
}
Emit(new Dictionary<string, object?> { ["event"] = "timed-end" });
Console.In.ReadLine();
return 0;
