using System.Globalization;
using System.Text.Json;

namespace Replication.PowerShell.Report;

/// <summary>
/// Benchmark results for the report, from the JSON files <c>./build.ps1 Bench</c> leaves (by default in out/bench).
/// Understands the bench's results.json (rounds of a system, each with measured phases: kind, clients, opsPerSecond,
/// p99), averaging a phase over rounds; any other JSON is searched for objects with an opsPerSecond (or throughput)
/// number. Files that do not parse are named in the note, never fatal. Stateless.
/// </summary>
internal static class BenchmarkResults
{
    /// <summary>Phases measured warm-up and cold start are not throughput figures.</summary>
    private static readonly HashSet<string> Skipped = new(StringComparer.OrdinalIgnoreCase) { "warmup", "cold" };

    public static (IReadOnlyList<BenchmarkSeries> Series, string? Note) Read(string folder)
    {
        if (!Directory.Exists(folder))
            return (Array.Empty<BenchmarkSeries>(), $"No benchmark results: {folder} does not exist. ./build.ps1 Bench writes them there.");
        var files = Directory.GetFiles(folder, "*.json", SearchOption.TopDirectoryOnly).OrderBy(f => f, StringComparer.Ordinal).ToArray();
        if (files.Length == 0)
            return (Array.Empty<BenchmarkSeries>(), $"No benchmark results: {folder} holds no *.json file. ./build.ps1 Bench writes them there.");
        var series = new List<BenchmarkSeries>();
        var problems = new List<string>();
        foreach (var file in files)
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(file));
                int before = series.Count;
                Collect(Path.GetFileName(file), doc.RootElement, series);
                if (series.Count == before) problems.Add($"{Path.GetFileName(file)}: no throughput figures found");
            }
            catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
            {
                problems.Add($"{Path.GetFileName(file)}: {e.Message}");
            }
        }
        return (series, problems.Count == 0 ? null : "Not shown: " + string.Join("; ", problems) + ".");
    }

    private static void Collect(string file, JsonElement root, List<BenchmarkSeries> series)
    {
        if (root.ValueKind == JsonValueKind.Object && Property(root, "rounds") is { ValueKind: JsonValueKind.Array } rounds)
        {
            var phases = new List<(string Label, double Ops, double? P99)>();
            foreach (var round in rounds.EnumerateArray())
            {
                string system = Text(round, "system") ?? "?";
                if (Property(round, "phases") is not { ValueKind: JsonValueKind.Array } list) continue;
                foreach (var phase in list.EnumerateArray())
                {
                    string kind = Text(phase, "kind") ?? "?";
                    if (Skipped.Contains(kind) || Number(phase, "opsPerSecond") is not double ops) continue;
                    string clients = Number(phase, "clients") is double c ? $", {c.ToString(CultureInfo.InvariantCulture)} clients" : "";
                    phases.Add(($"{system}: {kind}{clients}", ops, Number(phase, "p99")));
                }
            }
            foreach (var group in phases.GroupBy(p => p.Label))
            {
                var p99s = group.Where(p => p.P99 is not null).Select(p => p.P99!.Value).ToArray();
                series.Add(new BenchmarkSeries(file, group.Key, group.Average(p => p.Ops), p99s.Length == 0 ? null : p99s.Average()));
            }
            return;
        }
        Walk(file, root, "", series, depth: 0);
    }

    private static void Walk(string file, JsonElement e, string path, List<BenchmarkSeries> series, int depth)
    {
        if (depth > 8 || series.Count >= 200) return;
        if (e.ValueKind == JsonValueKind.Object)
        {
            if ((Number(e, "opsPerSecond") ?? Number(e, "throughput")) is double ops)
            {
                string label = Text(e, "name") ?? Text(e, "label") ?? Text(e, "kind") ?? (path.Length == 0 ? file : path);
                series.Add(new BenchmarkSeries(file, label, ops, Number(e, "p99")));
                return;
            }
            foreach (var p in e.EnumerateObject()) Walk(file, p.Value, path.Length == 0 ? p.Name : $"{path}.{p.Name}", series, depth + 1);
        }
        else if (e.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var item in e.EnumerateArray()) Walk(file, item, $"{path}[{i++}]", series, depth + 1);
        }
    }

    private static JsonElement? Property(JsonElement e, string name)
    {
        foreach (var p in e.EnumerateObject())
            if (string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase)) return p.Value;
        return null;
    }

    private static string? Text(JsonElement e, string name) => Property(e, name) is { ValueKind: JsonValueKind.String } v ? v.GetString() : null;

    private static double? Number(JsonElement e, string name) =>
        Property(e, name) is { ValueKind: JsonValueKind.Number } v && v.TryGetDouble(out var d) && double.IsFinite(d) ? d : null;
}
