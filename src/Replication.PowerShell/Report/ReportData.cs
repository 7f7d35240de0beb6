using System.Collections;
using System.Globalization;
using System.Management.Automation;

namespace Replication.PowerShell.Report;

/// <summary>
/// Everything one report page shows, gathered by Export-ReplicationReport and rendered by <see cref="ReportPage"/>.
/// Sections the engine cannot fill yet carry a note instead of data (<see cref="RingNote"/>, <see cref="EventNote"/>,
/// <see cref="BenchmarkNote"/>): the page shows the section with the note, so its layout does not change when the
/// data arrives. Immutable once built.
/// </summary>
internal sealed record ReportData
{
    public required string ClusterName { get; init; }
    public required Guid ClusterId { get; init; }
    public required string Mode { get; init; }
    public required int ReplicationFactor { get; init; }
    public required string Where { get; init; }
    public required DateTimeOffset Generated { get; init; }
    public required string ModuleVersion { get; init; }
    public required IReadOnlyList<ReplicationNode> Nodes { get; init; }
    public required IReadOnlyList<ShardRow> Shards { get; init; }
    public IReadOnlyList<RingRow> Ring { get; init; } = Array.Empty<RingRow>();
    public string? RingNote { get; init; }
    public IReadOnlyList<EventRow> Events { get; init; } = Array.Empty<EventRow>();
    public string? EventNote { get; init; }
    public IReadOnlyList<BenchmarkSeries> Benchmarks { get; init; } = Array.Empty<BenchmarkSeries>();
    public string? BenchmarkNote { get; init; }
}

/// <summary>A shard's placement, with its hash range [Start, Last] when the engine exposes one.</summary>
internal sealed record ShardRow(ReplicationShard Shard, ulong? RangeStart, ulong? RangeLast);

/// <summary>One node's part of the ring (Get-ReplicationRing): its tokens' positions when given as a list, else their
/// count; its share of the hash space (0..1).</summary>
internal sealed record RingRow(string Node, string? Zone, IReadOnlyList<ulong> Tokens, int TokenCount, double? Share, long? ShardsHeld, long? ShardsLed, long? Bytes);

/// <summary>One line of Get-ReplicationEvent.</summary>
internal sealed record EventRow(DateTimeOffset? Time, string Type, string? Node, string? Shard, string? Term, string Message);

/// <summary>One bar group of a benchmark chart: a label (system, kind, clients) and its measured values.</summary>
internal sealed record BenchmarkSeries(string File, string Label, double OpsPerSecond, double? P99Milliseconds);

/// <summary>Reads properties of objects whose types this module does not know yet (the output of cmdlets and engine
/// versions still to come), by name, through PowerShell's own property lookup.</summary>
internal static class Duck
{
    public static object? Get(object? value, params string[] names)
    {
        if (value is null) return null;
        var pso = PSObject.AsPSObject(value);
        foreach (var name in names)
            if (pso.Properties[name] is { } property)
            {
                try
                {
                    var v = property.Value;
                    return v is PSObject wrapped ? wrapped.BaseObject : v;
                }
                catch (GetValueException) { return null; }
            }
        return null;
    }

    public static string? Text(object? value, params string[] names) => Get(value, names) switch
    {
        null => null,
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        var v => v.ToString(),
    };

    public static double? Number(object? value, params string[] names) => Get(value, names) switch
    {
        null => null,
        string s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : null,
        IConvertible c and not bool => SafeDouble(c),
        _ => null,
    };

    public static long? Integer(object? value, params string[] names) => Number(value, names) is double d ? (long)d : null;

    public static ulong? Unsigned(object? value, params string[] names) => Get(value, names) switch
    {
        ulong u => u,
        long l when l >= 0 => (ulong)l,
        int i when i >= 0 => (ulong)i,
        string s when ulong.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var u) => u,
        _ => null,
    };

    /// <summary>The numbers in a collection property (token positions), or empty.</summary>
    public static IReadOnlyList<ulong> Unsigneds(object? value, params string[] names)
    {
        if (Get(value, names) is not IEnumerable items || items is string) return Array.Empty<ulong>();
        var list = new List<ulong>();
        foreach (var item in items)
        {
            var v = item is PSObject p ? p.BaseObject : item;
            if (v is ulong u) list.Add(u);
            else if (v is long l && l >= 0) list.Add((ulong)l);
            else if (v is int i && i >= 0) list.Add((ulong)i);
            else if (Unsigned(v, "Position", "Token", "Hash") is ulong t) list.Add(t);
        }
        return list;
    }

    private static double? SafeDouble(IConvertible c)
    {
        try { return c.ToDouble(CultureInfo.InvariantCulture); }
        catch (Exception e) when (e is FormatException or InvalidCastException or OverflowException) { return null; }
    }
}
