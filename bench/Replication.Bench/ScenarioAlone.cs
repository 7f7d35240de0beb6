using System.Text.Json;

/// <summary>
/// The failover and timing scenarios' own reports: each writes &lt;name&gt;.txt (Markdown, the README's tables) and
/// &lt;name&gt;.json to the output folder. `--only failover|timing` runs one of them without the throughput rounds;
/// the full run ends with the failover scenario.
/// </summary>
internal static class ScenarioAlone
{
    public static async Task<int> RunAsync(BenchOptions options, string temp, string secret)
    {
        if (options.Only == "timing")
        {
            var timing = await TimingScenario.RunAsync(temp, secret, options.ElectionMs, options.TimingMinutes, options.TimingKills, options.Verbose ? Console.WriteLine : null);
            Write(options.OutDir, "timing", timing.Text(), timing);
            return 0;
        }
        await FailoverAsync(options, temp, secret);
        return 0;
    }

    public static async Task FailoverAsync(BenchOptions options, string temp, string secret)
    {
        var failover = await FailoverScenario.RunAsync(temp, secret, options.FailoverRuns, options.ElectionTicks, options.Verbose ? Console.WriteLine : null);
        Write(options.OutDir, "failover", failover.Text(), failover);
    }

    private static void Write<T>(string outDir, string name, string text, T result)
    {
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, name + ".txt"), text);
        File.WriteAllText(Path.Combine(outDir, name + ".json"), JsonSerializer.Serialize(result, Json.Options));
        Console.WriteLine();
        Console.WriteLine(text);
        Console.WriteLine($"wrote {Path.Combine(outDir, name + ".txt")} and {name}.json");
    }
}
