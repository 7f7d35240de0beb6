using System.Globalization;
using System.Text;
using System.Text.Json;

/// <summary>The ring scenario's report (<see cref="RingResult"/>): Markdown tables printed, written to out/bench/ring.txt
/// (the README's "The ring in a running cluster" carries a run's tables) and the figures to out/bench/ring.json.</summary>
internal static class RingReport
{
    public static void Write(RingResult run, string outDir)
    {
        Directory.CreateDirectory(outDir);
        string text = Text(run);
        File.WriteAllText(Path.Combine(outDir, "ring.txt"), text);
        File.WriteAllText(Path.Combine(outDir, "ring.json"), JsonSerializer.Serialize(run, Json.Options));
        Console.WriteLine();
        Console.WriteLine(text);
        Console.WriteLine($"wrote {Path.Combine(outDir, "ring.txt")} and ring.json");
    }

    public static string Text(RingResult r)
    {
        var inv = CultureInfo.InvariantCulture;
        var b = new StringBuilder();
        b.AppendLine(inv, $"Ring scenario, {r.Started}: {r.Machine}; load average {r.LoadAverageStart} at the start, {r.LoadAverageEnd} at the end.");
        b.AppendLine(inv, $"{r.Shards} shards, RF 3, 4 node processes on 127.0.0.1; {r.Writers} writers (one majority write of a {r.ValueBytes}-byte value at a time each) throughout.");
        b.AppendLine();
        b.AppendLine("| shard move, writes continuing | move | writes | p50 | p99 | p99 / idle p99 | idle p99 in windows as long (median, max) | p99 / that median | moving shard p99 | snapshot | AddLearner to installed | rate | / raw copy | streamed rate | / raw copy |");
        b.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        b.AppendLine(inv, $"| idle ({r.Idle.Seconds:0} s before) | | {r.Idle.Writes:N0} | {r.Idle.P50:0.00} ms | {r.Idle.P99:0.00} ms | 1.00 | | | {r.Idle.ShardP99:0.00} ms | | | | | | |");
        foreach (var m in r.Moves)
        {
            double ratio = r.Idle.P99 > 0 ? m.Writes.P99 / r.Idle.P99 : 0;
            double raw = r.RawCopyMBps > 0 ? m.SnapshotMBps / r.RawCopyMBps : 0;
            double rawStreamed = r.RawCopyMBps > 0 ? m.StreamMBps / r.RawCopyMBps : 0;
            double windows = m.IdleWindowP99Median > 0 ? m.Writes.P99 / m.IdleWindowP99Median : 0;
            string idleWindows = m.IdleWindowP99s.Length == 0 ? "" : $"{m.IdleWindowP99Median:0.00} ms, {m.IdleWindowP99s.Max():0.00} ms ({m.IdleWindowP99s.Length} windows)";
            b.AppendLine(inv, $"| {m.Label} | {m.MoveMs / 1000:0.00} s | {m.Writes.Writes:N0} | {m.Writes.P50:0.00} ms | {m.Writes.P99:0.00} ms | {ratio:0.00} | {idleWindows} | {(windows > 0 ? windows.ToString("0.00", inv) : "")} | {m.Writes.ShardP99:0.00} ms "
                + $"| {m.SnapshotBytes / 1e6:0.0} MB | {m.AddToInstalledMs:N0} ms (first chunk after {m.FirstChunkMs:N0}, streamed {m.StreamMs:N0}, stored {m.StoreMs:N0}, loop held {m.HeldMs:N0}) | {m.SnapshotMBps:0.0} MB/s | {raw:0.00} | {m.StreamMBps:0.0} MB/s | {rawStreamed:0.00} |");
        }
        if (r.Moves.Count > 0 && r.RawCopyMBps > 0)
        {
            // Issue 9's goals for a move with writes continuing, counted over the moves of this run.
            int p99Met = r.Moves.Count(m => m.IdleWindowP99Median > 0 && m.Writes.P99 <= 2 * m.IdleWindowP99Median);
            int streamMet = r.Moves.Count(m => m.StreamMBps >= 0.5 * r.RawCopyMBps);
            b.AppendLine();
            b.AppendLine(inv, $"Goals over the {r.Moves.Count} moves: write p99 within 2x the idle p99 in windows as long in {p99Met}; streamed at half the raw copy's rate or more in {streamMet}.");
        }
        b.AppendLine();
        b.AppendLine("Idle p99 in windows as long: the idle seconds cut into consecutive windows of the move's length, each window's p99. A move of a");
        b.AppendLine("second holds a few hundred writes, whose p99 is about their third slowest; the idle p99 is that of thousands of writes.");
        b.AppendLine(inv, $"Raw copy of the moved shard's rows as a SQLite file of state.db's page size on the same disk (File.Copy + fsync): {r.RawCopyBytes / 1e6:0.0} MB in {r.RawCopyMs:N0} ms = {r.RawCopyMBps:0} MB/s (the same rows with SQLite's default 4 KiB pages: {r.RawCopy4kBytes / 1e6:0.0} MB in {r.RawCopy4kMs:N0} ms; a row of 1,000 bytes spills into an overflow page of its own there).");
        if (r.LoopbackSendMs > 0 && r.BackupImageMs > 0)
            b.AppendLine(inv, $"What shipping a shard's own file could reach (issue 9's direction, measured beside the raw copy): the same file sent over loopback TCP (sendfile, written and fsynced on the other side) in {r.LoopbackSendMs:N0} ms = {r.RawCopyBytes / 1e6 / (r.LoopbackSendMs / 1000):0} MB/s ({r.RawCopyMs / r.LoopbackSendMs:0.00} of raw copy); a consistent image of it by SQLite's online backup API, fsynced, {r.BackupImageBytes / 1e6:0.0} MB in {r.BackupImageMs:N0} ms ({r.RawCopyMs / r.BackupImageMs:0.00} of raw copy), image and send together {r.RawCopyMs / (r.BackupImageMs + r.LoopbackSendMs):0.00} of raw copy.");
        b.AppendLine(inv, $"Acknowledged writes over the whole run: {r.Acknowledged:N0}; read back (linearizable) with the written value: {r.ReadBack:N0}; missing or stale: {r.Missing}. Failed writes: {r.WriteErrors}{(r.FirstWriteError is { } e ? $" (first: {e})" : "")}.");
        b.AppendLine();
        b.AppendLine("| change | change done after | leaders settled after that | balancing transfers | least possible | shards moved twice | leader changes seen | leaders per node after |");
        b.AppendLine("|---|---:|---:|---:|---:|---:|---:|---|");
        foreach (var c in r.Changes)
            b.AppendLine(inv, $"| {c.Change} | {c.ChangeMs / 1000:0.00} s | {(c.Settled ? $"{c.SettleMs / 1000:0.00} s" : "not settled")} | {c.Transfers} | {c.LowerBound} | {c.ShardsMovedTwice} | {c.LeaderChanges} | {c.LeadersAfter} |");
        b.AppendLine();
        b.AppendLine("Change done: from the change's start to its last membership or node-state change seen in the status (polled every 50 ms;");
        b.AppendLine("a node's own report reaches the polled node within a status period, 250 ms). Settled: from then to the start of the final");
        b.AppendLine("streak (5 s or more) in which every running voter leads floor(S/N) or ceil(S/N). Least possible: leaderships above ceil(S/N) at that change.");
        b.AppendLine(inv, $"(scenario took {r.Seconds:0} s)");
        return b.ToString();
    }
}
