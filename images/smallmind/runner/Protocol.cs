// What both SmallMind paths share: the generator interface, one repetition's stamps, the
// event lines for runner.py and the clock.
using System.Diagnostics;
using System.Numerics;
using System.Runtime;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text.Json;

namespace OrchestrateSmallMind;

/// <summary>One SmallMind path: a model loaded once, then one generation per call.</summary>
internal interface IGenerator : IDisposable
{
    /// <summary>What SmallMind built and how it was set up, read back from it, for the RESULT.</summary>
    Dictionary<string, object?> Describe(string prompt);

    /// <summary>One generation of the prompt from an empty KV cache, every token id stamped as it arrives.</summary>
    Task<Repetition> GenerateAsync(string prompt);
}

/// <summary>One generation: when it was asked for, when each token id arrived, the ids, and why it ended.</summary>
internal sealed record Repetition(double Sent, List<double> Times, List<int> TokenIds, string? FinishReason);

internal static class Events
{
    public const string Prefix = "@orchestrate ";

    public static void Emit(Dictionary<string, object?> value)
    {
        Console.Out.WriteLine(Prefix + JsonSerializer.Serialize(value));
        Console.Out.Flush();
    }
}

internal static class Clock
{
    /// <summary>Seconds on the monotonic Stopwatch clock.</summary>
    public static double Now() => Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;

    /// <summary>The .NET facts SmallMind's speed depends on and does not control itself.</summary>
    public static Dictionary<string, object?> Facts() => new()
    {
        ["framework"] = RuntimeInformation.FrameworkDescription,
        ["processor_count"] = Environment.ProcessorCount,
        ["server_gc"] = GCSettings.IsServerGC,
        ["vector_float_lanes"] = Vector<float>.Count,
        ["vector256_accelerated"] = Vector256.IsHardwareAccelerated,
        ["vector512_accelerated"] = Vector512.IsHardwareAccelerated,
    };
}
