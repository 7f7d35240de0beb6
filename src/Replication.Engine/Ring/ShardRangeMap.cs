using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Replication.Engine.Ring;

/// <summary>
/// Which shard owns each key: the 64-bit hash space (<see cref="KeyHash"/>) cut into contiguous
/// ranges, one per shard, sorted by start, covering every hash exactly once. A shard splits at its
/// range's midpoint into two shards (design: shared/DESIGN.md, "Ring and shards"); ranges never
/// merge. Immutable and thread-safe: <see cref="Split"/> returns a new map with
/// <see cref="Version"/> one higher, so a newer map is recognisable wherever maps travel.
/// Invariants (checked on construction and on parsing): the first range starts at 0, each next
/// range starts right after the previous one's last hash, the last range ends at ulong.MaxValue,
/// and shard ids are distinct and not negative.
/// </summary>
public sealed class ShardRangeMap
{
    /// <summary>Version of the text format of <see cref="ToJson"/>; a parser refuses any other.</summary>
    public const int FormatVersion = 1;

    private readonly ShardRange[] _ranges;   // sorted by Start
    private readonly ulong[] _starts;        // _ranges[i].Start, for the binary search
    private readonly Dictionary<int, int> _indexOfShard;

    private ShardRangeMap(ShardRange[] ranges, long version)
    {
        Validate(ranges);
        _ranges = ranges;
        _starts = ranges.Select(r => r.Start).ToArray();
        _indexOfShard = new Dictionary<int, int>(ranges.Length);
        for (int i = 0; i < ranges.Length; i++) _indexOfShard.Add(ranges[i].Shard, i);
        Version = version;
    }

    /// <summary>Generation of the map: 0 for a new map, one more at each split.</summary>
    public long Version { get; }

    /// <summary>The ranges, sorted by start (so by position on the ring).</summary>
    public IReadOnlyList<ShardRange> Ranges => _ranges;

    /// <summary>Number of shards.</summary>
    public int Count => _ranges.Length;

    /// <summary>
    /// A map of <paramref name="shardCount"/> shards with ids 0..shardCount-1 in ring order, splitting
    /// the space evenly: shard i starts at floor(i * 2^64 / shardCount).
    /// </summary>
    public static ShardRangeMap Even(int shardCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shardCount, 1);
        var ranges = new ShardRange[shardCount];
        for (int i = 0; i < shardCount; i++)
        {
            ulong start = StartOf(i, shardCount);
            ulong last = i + 1 < shardCount ? StartOf(i + 1, shardCount) - 1 : ulong.MaxValue;
            ranges[i] = new ShardRange(i, start, last);
        }
        return new ShardRangeMap(ranges, 0);

        static ulong StartOf(int i, int count) => (ulong)(((UInt128)(uint)i << 64) / (uint)count);
    }

    /// <summary>The shard that owns <paramref name="key"/>.</summary>
    public int ShardFor(string key) => ShardForHash(KeyHash.Of(key));

    /// <summary>The shard whose range holds <paramref name="hash"/> (binary search, O(log shards)).</summary>
    public int ShardForHash(ulong hash) => _ranges[IndexOf(hash)].Shard;

    /// <summary>The range that holds <paramref name="hash"/>.</summary>
    public ShardRange RangeForHash(ulong hash) => _ranges[IndexOf(hash)];

    /// <summary>True when the map has a shard with id <paramref name="shard"/>.</summary>
    public bool Contains(int shard) => _indexOfShard.ContainsKey(shard);

    /// <summary>The range of <paramref name="shard"/>; <see cref="KeyNotFoundException"/> when the map has no such shard.</summary>
    public ShardRange RangeOf(int shard) =>
        _indexOfShard.TryGetValue(shard, out int i) ? _ranges[i] : throw new KeyNotFoundException($"The shard map has no shard {shard}.");

    /// <summary>
    /// A new map in which <paramref name="shard"/> keeps the left half of its range, [Start, Midpoint],
    /// and the new shard <paramref name="newShard"/> owns the right half. The left half keeps the
    /// shard's position on the ring, hence its replicas. Throws when the shard is unknown, the new id
    /// is taken or negative, or the range holds a single hash.
    /// </summary>
    public ShardRangeMap Split(int shard, int newShard)
    {
        var range = RangeOf(shard);
        ArgumentOutOfRangeException.ThrowIfNegative(newShard);
        if (Contains(newShard)) throw new ArgumentException($"Shard {newShard} already exists.", nameof(newShard));
        if (!range.CanSplit) throw new InvalidOperationException($"Shard {shard} owns a single hash and cannot split.");
        int i = _indexOfShard[shard];
        var ranges = new ShardRange[_ranges.Length + 1];
        Array.Copy(_ranges, ranges, i);
        ranges[i] = range with { Last = range.Midpoint };
        ranges[i + 1] = new ShardRange(newShard, range.Midpoint + 1, range.Last);
        Array.Copy(_ranges, i + 1, ranges, i + 2, _ranges.Length - i - 1);
        return new ShardRangeMap(ranges, Version + 1);
    }

    /// <summary>
    /// The map as compact JSON: {"format":1,"version":V,"ranges":[{"shard":0,"start":"0000000000000000","last":"3fffffffffffffff"},...]}.
    /// Hashes are 16 lowercase hex digits (a JSON number above 2^53 loses precision in many readers).
    /// Deterministic: equal maps give equal text.
    /// </summary>
    public string ToJson()
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteNumber("format", FormatVersion);
            w.WriteNumber("version", Version);
            w.WriteStartArray("ranges");
            foreach (var r in _ranges)
            {
                w.WriteStartObject();
                w.WriteNumber("shard", r.Shard);
                w.WriteString("start", r.Start.ToString("x16", CultureInfo.InvariantCulture));
                w.WriteString("last", r.Last.ToString("x16", CultureInfo.InvariantCulture));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>
    /// Parses <see cref="ToJson"/> output. Throws <see cref="FormatException"/> on malformed text, an
    /// unknown format version, or ranges that break the map's invariants (gaps, overlaps, duplicate ids).
    /// </summary>
    public static ShardRangeMap FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            int format = root.GetProperty("format").GetInt32();
            if (format != FormatVersion)
                throw new FormatException($"Shard map format {format} is not supported; this version reads format {FormatVersion}.");
            long version = root.GetProperty("version").GetInt64();
            if (version < 0) throw new FormatException($"Shard map version {version} is negative.");
            var ranges = new List<ShardRange>();
            foreach (var e in root.GetProperty("ranges").EnumerateArray())
                ranges.Add(new ShardRange(e.GetProperty("shard").GetInt32(), Hex(e, "start"), Hex(e, "last")));
            return new ShardRangeMap(ranges.ToArray(), version);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException)
        {
            throw new FormatException($"Not a valid shard map: {ex.Message}", ex);
        }

        static ulong Hex(JsonElement e, string name)
        {
            string text = e.GetProperty(name).GetString() ?? "";
            if (text.Length != 16 || !ulong.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong value))
                throw new FormatException($"\"{name}\" must be 16 hex digits, not \"{text}\".");
            return value;
        }
    }

    private int IndexOf(ulong hash)
    {
        // The last range whose start is <= hash; one exists because the first range starts at 0.
        int i = Array.BinarySearch(_starts, hash);
        return i >= 0 ? i : ~i - 1;
    }

    private static void Validate(ShardRange[] ranges)
    {
        if (ranges.Length == 0) throw new ArgumentException("A shard map needs at least one range.");
        var ids = new HashSet<int>();
        ulong expectedStart = 0;
        for (int i = 0; i < ranges.Length; i++)
        {
            var r = ranges[i];
            if (r.Shard < 0 || !ids.Add(r.Shard)) throw new ArgumentException($"Shard id {r.Shard} is negative or appears twice.");
            if (r.Start != expectedStart) throw new ArgumentException($"Shard {r.Shard} starts at 0x{r.Start:x16}, not 0x{expectedStart:x16}: the ranges leave a gap or overlap.");
            if (r.Last < r.Start) throw new ArgumentException($"Shard {r.Shard} ends before it starts.");
            bool last = i == ranges.Length - 1;
            if (last != (r.Last == ulong.MaxValue)) throw new ArgumentException("Only the last range may, and it must, end at the top of the hash space.");
            if (!last) expectedStart = r.Last + 1;
        }
    }
}
