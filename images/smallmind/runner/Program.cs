// orchestrate's SmallMind runner: loads one GGUF model along one SmallMind path and streams
// timed generations of one prompt. runner.py (the runner kit) does everything else: the job,
// the prompt, the CPU window and the RESULT.
//
// Usage: GgufInferenceDemo PATH MODEL THREADS GEN_TOKENS WARMUP REPETITIONS PROMPT_FILE
//   PATH: "public"   - SmallMind's public API (PublicPath.cs)
//         "run-gguf" - SmallMind's GgufModelLoader + InferenceSession, as its run-gguf command (RunGgufPath.cs)
//
// Protocol: every line this program writes for runner.py starts with "@orchestrate " and
// holds one JSON object; any other stdout line is SmallMind's own output. Events: "loaded",
// then WARMUP "repetition"s, "timed-start" (then it waits for a line on stdin), REPETITIONS
// "repetition"s, "timed-end" (then it waits for a line on stdin again), so that runner.py's
// per-thread CPU window brackets exactly the timed repetitions. Exit 0; on an error, the
// reason on stderr and exit 1.
using OrchestrateSmallMind;

if (args.Length != 7)
{
    Console.Error.WriteLine(
        "usage: GgufInferenceDemo public|run-gguf MODEL THREADS GEN_TOKENS WARMUP REPETITIONS PROMPT_FILE");
    return 2;
}
try
{
    string path = args[0];
    string modelPath = args[1];
    int threads = int.Parse(args[2]);
    int genTokens = int.Parse(args[3]);
    int warmup = int.Parse(args[4]);
    int repetitions = int.Parse(args[5]);
    string prompt = File.ReadAllText(args[6]);

    double loadStart = Clock.Now();
    using IGenerator generator = path switch
    {
        "public" => new PublicPath(modelPath, threads, genTokens),
        "run-gguf" => new RunGgufPath(modelPath, genTokens),
        _ => throw new ArgumentException($"path must be public or run-gguf, not '{path}'"),
    };
    double loadS = Clock.Now() - loadStart;
    Events.Emit(new Dictionary<string, object?>
    {
        ["event"] = "loaded",
        ["path"] = path,
        ["load_s"] = loadS,
        ["smallmind"] = generator.Describe(prompt),
        ["runtime"] = Clock.Facts(),
    });

    for (int i = 0; i < warmup + repetitions; i++)
    {
        if (i == warmup)
        {
            Events.Emit(new Dictionary<string, object?> { ["event"] = "timed-start" });
            Console.In.ReadLine();
        }
        Repetition done = await generator.GenerateAsync(prompt);
        Events.Emit(new Dictionary<string, object?>
        {
            ["event"] = "repetition", ["index"] = i, ["timed"] = i >= warmup, ["sent"] = done.Sent,
            ["times"] = done.Times, ["token_ids"] = done.TokenIds, ["finish_reason"] = done.FinishReason,
        });
    }
    Events.Emit(new Dictionary<string, object?> { ["event"] = "timed-end" });
    Console.In.ReadLine();
    return 0;
}
catch (Exception exc)
{
    Console.Error.WriteLine($"smallmind: error: {exc.GetType().Name}: {exc.Message}");
    for (Exception? inner = exc.InnerException; inner != null; inner = inner.InnerException)
    {
        Console.Error.WriteLine($"  caused by {inner.GetType().Name}: {inner.Message}");
    }
    return 1;
}
