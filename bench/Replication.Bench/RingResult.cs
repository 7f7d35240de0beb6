/// <summary>What the ring scenario measured (<see cref="RingScenario"/>); serialized to out/bench/ring.json.</summary>
internal sealed record RingResult
{
    public string Machine { get; init; } = "";
    public string Started { get; init; } = "";
    public string LoadAverageStart { get; init; } = "";
    public string LoadAverageEnd { get; set; } = "";
    public int Shards { get; init; }
    public int Writers { get; init; }
    public int ValueBytes { get; init; }
    /// <summary>Write latency over the seconds before the first move (same writers, nothing moving).</summary>
    public LatencyWindow Idle { get; set; } = new();
    public List<RingMove> Moves { get; } = new();
    public List<LeaderSettle> Changes { get; } = new();
    /// <summary>The raw copy of the moved shard's rows as a SQLite file (ShardFile, rebuilt with state.db's page size) on the same
    /// disk, fsynced: what the snapshot's rate is compared with.</summary>
    public long RawCopyBytes { get; set; }
    public double RawCopyMs { get; set; }
    public double RawCopyMBps => RawCopyMs > 0 ? RawCopyBytes / 1e6 / (RawCopyMs / 1000) : 0;
    /// <summary>The same copy with ShardFile's own 4 KiB pages (the comparison before: 4.5 times the snapshot's bytes).</summary>
    public long RawCopy4kBytes { get; set; }
    public double RawCopy4kMs { get; set; }
    /// <summary>The rebuilt file (RawCopyBytes) sent over loopback TCP by sendfile, written and fsynced on the other side: what a
    /// snapshot that ships a shard's own file could reach.</summary>
    public double LoopbackSendMs { get; set; }
    /// <summary>A consistent image of the rebuilt file by SQLite's online backup API, fsynced.</summary>
    public long BackupImageBytes { get; set; }
    public double BackupImageMs { get; set; }
    /// <summary>Writes acknowledged over the whole scenario (moves, join, restart, leave), read back at the end.</summary>
    public long Acknowledged { get; set; }
    public long ReadBack { get; set; }
    public long Missing { get; set; }
    public long WriteErrors { get; set; }
    public string? FirstWriteError { get; set; }
    public double Seconds { get; set; }
}

/// <summary>Write latencies over one window: all writes, and those to the moving shard alone.</summary>
internal sealed record LatencyWindow
{
    public double Seconds { get; init; }
    public int Writes { get; init; }
    public double P50 { get; init; }
    public double P99 { get; init; }
    public double Max { get; init; }
    public int ShardWrites { get; init; }
    public double ShardP50 { get; init; }
    public double ShardP99 { get; init; }
    public long Errors { get; init; }
}

/// <summary>One replica move (pin or unpin) with writes continuing, and its snapshot copy from the node logs.</summary>
internal sealed record RingMove
{
    public string Label { get; init; } = "";
    public int Shard { get; init; }
    public int FromNode { get; init; }
    public int ToNode { get; init; }
    /// <summary>From the pin to the status showing the new voters and no learner.</summary>
    public double MoveMs { get; init; }
    public LatencyWindow Writes { get; init; } = new();
    /// <summary>The idle seconds' write p99 over consecutive windows as long as this move (RingWriters.WindowP99s).</summary>
    public double[] IdleWindowP99s { get; init; } = [];
    /// <summary>Their median: the idle p99 at this move's sample size.</summary>
    public double IdleWindowP99Median => IdleWindowP99s.Length == 0 ? 0 : IdleWindowP99s.Order().ElementAt(IdleWindowP99s.Length / 2);
    /// <summary>From the leader's AddLearner proposal to the learner's snapshot installed (both from the node logs).</summary>
    public double AddToInstalledMs { get; init; }
    public long SnapshotBytes { get; init; }
    public double StreamMs { get; init; }
    public double StoreMs { get; init; }
    /// <summary>The target node's longest loop iteration while it stored the rows (its other groups waited that long).</summary>
    public double HeldMs { get; init; }
    /// <summary>From the AddLearner to the first chunk received: what is left of AddToInstalledMs after streaming and storing.</summary>
    public double FirstChunkMs => Math.Max(0, AddToInstalledMs - StreamMs - StoreMs);
    public double SnapshotMBps => AddToInstalledMs > 0 ? SnapshotBytes / 1e6 / (AddToInstalledMs / 1000) : 0;
    /// <summary>The snapshot's bytes over the time from its first chunk to its last (streaming alone).</summary>
    public double StreamMBps => StreamMs > 0 ? SnapshotBytes / 1e6 / (StreamMs / 1000) : 0;
    public string? Note { get; init; }
}

/// <summary>How leaderships settled after one change (node join, restart, leave).</summary>
internal sealed record LeaderSettle
{
    public string Change { get; init; } = "";
    /// <summary>From the change's start (process start, removal) to its last membership or node-state change seen in the status.</summary>
    public double ChangeMs { get; init; }
    /// <summary>From that last change to the start of the final balanced streak (0 when the change never unbalanced them).</summary>
    public double SettleMs { get; init; }
    public bool Settled { get; init; }
    /// <summary>Leader transfers the balancer made ("(balancing)" log lines) in the window.</summary>
    public int Transfers { get; init; }
    /// <summary>The least transfers that could have balanced the leaderships as they were at the last change.</summary>
    public int LowerBound { get; init; }
    /// <summary>Shards the balancer transferred more than once in the window (flapping).</summary>
    public int ShardsMovedTwice { get; init; }
    /// <summary>Leader changes of any cause seen in the status samples (elections and transfers).</summary>
    public int LeaderChanges { get; init; }
    public string LeadersAfter { get; init; } = "";
}
