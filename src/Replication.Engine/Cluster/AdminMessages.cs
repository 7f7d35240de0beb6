namespace Replication.Engine.Cluster;

// The arguments and answers of the administrative operations (ClusterNode.Admin.cs), as they travel in the
// JSON body of an Admin request (Client/WireJson.cs). Internal and grouped in one file on purpose: they are
// the protocol's vocabulary, not API. Names are part of the wire format: only ever add properties.

/// <summary>The names of the administrative operations. Stable: they travel on the wire.</summary>
internal static class AdminOps
{
    // Hot backup: a coordinator cuts every shard; the client then reads each shard from the node holding its capture.
    public const string BackupBegin = "backup.begin";
    public const string BackupRaise = "backup.raise";
    public const string BackupLower = "backup.lower";
    public const string BackupWait = "backup.wait";
    public const string BackupRead = "backup.read";
    public const string BackupEnd = "backup.end";
    // Cold backup of one node: it copies its files while its loop is held, then the client reads them.
    public const string ColdBegin = "cold.begin";
    public const string FileRead = "file.read";
    public const string ColdEnd = "cold.end";
    // Replica comparison: a coordinator compares each shard's replicas by Merkle tree, exchanging hashes.
    public const string ConsistencyCheck = "consistency.check";
    public const string MerkleTarget = "merkle.target";
    public const string MerkleCapture = "merkle.capture";
    public const string MerkleTree = "merkle.tree";
    public const string MerkleRows = "merkle.rows";
    public const string MerkleEnd = "merkle.end";
    // Rebuilding a node: out of every group (membership change), its data dropped or replaced, then back in.
    public const string NodeRebuild = "node.rebuild";
    public const string NodeMark = "node.mark";
    public const string NodeRebuilt = "node.rebuilt";
    public const string ShardVoters = "shard.voters";
    // Splits: the metadata leader takes the new shard's id, the shard's leader proposes the split, then the map grows.
    public const string ShardSplit = "shard.split";
    public const string ShardSplitHere = "shard.splithere";
    public const string ShardMapAdd = "shard.mapadd";
    public const string FileWrite = "file.write";
    // A node's event history (ClusterNode.Events.cs); the client asks every node and merges.
    public const string EventsRead = "events.read";
    // The on-demand storage check (ClusterNode.StorageCheck.cs): each node checks its own stores.
    public const string StorageCheck = "storage.check";
    // Planned switchover: a coordinator asks the shard's leader for the best target, then asks it to transfer to it.
    public const string ShardFailover = "shard.failover";
    public const string ShardTransferTarget = "shard.transfertarget";
    public const string ShardTransfer = "shard.transfer";
    // Leadership balancing: the metadata leader plans, each shard's leader hands over (ClusterNode.Placement.cs).
    public const string LeaderHandOver = "leader.handover";
    // Forced recovery (ClusterNode.ForcedRecovery.cs): a coordinator asks every node for its replica, then the survivor rewrites.
    public const string ShardForce = "shard.force";
    public const string ShardReplica = "shard.replica";
    public const string ShardForceHere = "shard.forcehere";
    // Maintenance: a coordinator has the metadata leader set or clear a node's Suspended mark.
    public const string NodeSuspend = "node.suspend";
    public const string NodeSuspendHere = "node.suspendhere";
    // The ring: a node's role (leaving, zone, learner) and pins, written by the metadata leader; the ring's view from any node.
    public const string NodeChange = "node.change";
    // A node stopped on request tells its peers before it closes its connections (ClusterNode.Status.cs): Stopped, not Unreachable.
    public const string NodeStopped = "node.stopped";
    public const string ShardPin = "shard.pin";
    public const string RingView = "ring.view";
    // Fault injection by a fault drill into node processes it started (ClusterNode.Faults.cs); refused by any other node.
    public const string FaultSet = "fault.set";
    // Clients riding through a failover (ClusterNode.LeaderWatch.cs): who leads these shards, as the node asked sees it,
    // answered once one is led by a node other than the one a request waits on (or at once, or at the wait's end).
    public const string ShardLeaders = "shard.leaders";
}

internal sealed record TimeoutArgs(long TimeoutMs);

/// <summary>The consistent cut a hot backup reads: every shard's capture, held on the node that led it.</summary>
internal sealed record BackupTicket(Guid CutId, DateTimeOffset Created, long BarrierPauseMicros, IReadOnlyList<BackupTicketShard> Shards);

internal sealed record BackupTicketShard(int Shard, int Node, long Index, long Term, long KeyCount, string Sha256);

internal sealed record CutArgs(Guid CutId, int Shard, long HoldMs);

internal sealed record CutAnswer(int Node, long Index, long Term);

internal sealed record LowerAnswer(long HeldMicros);

/// <summary>A cut's row count and digest, and the hash range the shard owned at the cut (null: never split).</summary>
internal sealed record ShardContentAnswer(long KeyCount, string Sha256, ulong? RangeStart = null, ulong? RangeLast = null);

internal sealed record ReadArgs(Guid CutId, int Shard, string? After, int MaxRows);

internal sealed record ReadAnswer(bool Done, int Rows);

internal sealed record CutIdArgs(Guid CutId);

/// <summary>A cold copy of a node's files, kept on that node until the client read it (or it expired).</summary>
internal sealed record ColdTicket(Guid Ticket, DateTimeOffset Created, IReadOnlyList<ColdFile> Files, IReadOnlyList<ColdShard> Shards);

internal sealed record ColdFile(string Name, long Bytes, string Sha256);

internal sealed record ColdShard(int Shard, long Index, long Term, long KeyCount);

internal sealed record FileReadArgs(Guid Ticket, string Name, long Offset, int Count);

internal sealed record FileWriteArgs(Guid Ticket, string Name, long Offset, bool Last);

internal sealed record TicketArgs(Guid Ticket);

internal sealed record ConsistencyArgs(int? Shard, long TimeoutMs);

internal sealed record ShardArgs(int Shard);

/// <summary>A shard's leader, the index every replica is compared at, and the replicas (voters and learners).</summary>
internal sealed record MerkleTargetAnswer(int Leader, long Index, IReadOnlyList<int> Replicas);

internal sealed record MerkleCaptureArgs(Guid CheckId, int Shard, long Index, long TimeoutMs);

internal sealed record MerkleTreeArgs(Guid CheckId, int Shard, IReadOnlyList<string>? Boundaries);

internal sealed record MerkleTreeAnswer(IReadOnlyList<string> Boundaries, IReadOnlyList<string> Leaves, string Root, long KeyCount);

internal sealed record MerkleRowsArgs(Guid CheckId, int Shard, string? Start, string? End, int Limit);

/// <summary>Rows of a key range as (key, SHA-256 of the whole row): enough to name differing keys without moving values.</summary>
internal sealed record MerkleRowsAnswer(IReadOnlyList<string> Keys, IReadOnlyList<string> Hashes, bool Truncated);

internal sealed record RebuildArgs(int Node, Guid? Upload, long TimeoutMs);

internal sealed record RebuildAnswer(string State);

internal sealed record RebuiltArgs(int Node, long Epoch);

/// <summary>node.stopped: the node that stopped on request (the sender itself).</summary>
internal sealed record StoppedArgs(int Node);

/// <summary>Whether a rebuild is done (the node carried it out, is no longer marked, and every shard placed on it has it
/// as a voter according to that shard's leader now), and where it stands otherwise.</summary>
internal sealed record RebuiltAnswer(bool Done, string State);

/// <summary>A shard's voters and learners as its leader has them now.</summary>
internal sealed record ShardVotersAnswer(IReadOnlyList<int> Voters, IReadOnlyList<int> Learners);

internal sealed record Empty();

/// <summary>Split <c>Shard</c> if it still owns [ExpectStart, ExpectLast] (what the caller saw): a retried request finds it split and answers the same halves.</summary>
internal sealed record SplitArgs(int Shard, long TimeoutMs, ulong ExpectStart, ulong ExpectLast);

/// <summary>What the shard's leader proposes: split <paramref name="Shard"/> into these two ranges, the right one to <paramref name="NewShard"/>.</summary>
internal sealed record SplitHereArgs(int Shard, int NewShard, ulong LeftStart, ulong LeftLast, ulong RightStart, ulong RightLast);

internal sealed record SplitAnswer(int Shard, int NewShard, ulong LeftStart, ulong LeftLast, ulong RightStart, ulong RightLast, long Index);

/// <summary>Adds <paramref name="NewShard"/>, split off <paramref name="Shard"/>, to the metadata's shard map (idempotent).</summary>
internal sealed record MapAddArgs(int Shard, int NewShard);

/// <summary>A filter on a node's event history: at or after Since, of these types and shards (null or empty: all), the Last newest.</summary>
internal sealed record EventsArgs(DateTimeOffset? Since, IReadOnlyList<ReplicationEventType>? Types, IReadOnlyList<int>? Shards, int? Last);

/// <summary>A switchover of <c>Shard</c> to <c>Target</c> (null: the leader chooses), within TimeoutMs.</summary>
internal sealed record FailoverArgs(int Shard, int? Target, long TimeoutMs);

/// <summary>Hand the leadership of <c>Shard</c> to node <c>Target</c>, if the receiving node leads it (balancing).</summary>
internal sealed record HandOverArgs(int Shard, int Target);

/// <summary>Whether the leader transfer was started.</summary>
internal sealed record HandOverAnswer(bool Done);

/// <summary>Make the receiving node's replica of <c>Shard</c> the only voter, provided its voters are still <c>Voters</c>;
/// <c>ReportedCommit</c>: the highest commit index the lost voters last reported (a lower bound of the loss, 0: none);
/// <c>OldLeader</c>: the last leader the survivor knew of.</summary>
internal sealed record ForceHereArgs(int Shard, IReadOnlyList<int> Voters, long TimeoutMs, long ReportedCommit, int OldLeader);

/// <summary>A node's replica of a shard (null: the node does not host it).</summary>
internal sealed record ReplicaAnswer(ReplicaState? Replica);

/// <summary>The leader's choice of a switchover target for a shard.</summary>
internal sealed record TransferTargetAnswer(int Leader, int Target);

/// <summary>Set (Suspended true) or clear a node's maintenance mark.</summary>
internal sealed record SuspendArgs(int Node, bool Suspended, long TimeoutMs);
/// <summary>Change a node's ring role; null leaves a property as it is. <c>Force</c>: leave even when the rest cannot hold
/// ReplicationFactor voters.</summary>
internal sealed record NodeChangeArgs(int Node, bool? Leaving, string? Zone, bool? Learner, bool Force, long TimeoutMs);

internal sealed record NodeChangeAnswer(string Detail);

/// <summary>Pin <c>Shard</c>'s voters to <c>Nodes</c> (in order), or drop its pin when null.</summary>
internal sealed record PinArgs(int Shard, int[]? Nodes, long TimeoutMs);

internal sealed record RingViewArgs;

/// <summary>The ring as one node sees it: a row per node, and every replica move still to make.</summary>
internal sealed record RingViewAnswer(Ring.RingEntry[] Entries, bool[] Learners, int[] Placed, Ring.ShardMove[] Moves);
/// <summary>
/// A node's whole fault state, set at once (so a retried request and a heal are the same thing): the peers whose Raft
/// traffic it drops, the delay before each log save, and the local-reads mutant. <paramref name="Token"/> must equal
/// the node process's <c>REPLICATION_FAULT_INJECTION</c> environment variable.
/// </summary>
internal sealed record FaultArgs(string Token, IReadOnlyList<int> CutOff, long SaveDelayMs, bool MutantLocalReads);

/// <summary>Who leads <c>Shards</c>: answered as soon as the node asked knows one of them led by a node whose endpoint is not
/// <c>NotEndpoint</c> in a term after <c>AfterTerm</c>, or after <c>WaitMs</c> (0: at once) with what it knows then.</summary>
internal sealed record LeaderWatchArgs(IReadOnlyList<int> Shards, string? NotEndpoint, long AfterTerm, long WaitMs);

/// <summary>A shard's leader as one node knows it (Leader 0 and Endpoint "": none known) and the term it leads in.</summary>
internal sealed record ShardLeaderView(int Shard, int Leader, string Endpoint, long Term);

/// <summary>The answering node, its election timeout (ms) and its view of each shard asked about.</summary>
internal sealed record LeaderWatchAnswer(int Node, int ElectionTimeoutMs, IReadOnlyList<ShardLeaderView> Shards);
