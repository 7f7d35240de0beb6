using System.Collections.Concurrent;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// The node's event history (Get-ReplicationEvent; the store and why it is a file of its own: Storage/EventStore.cs).
/// Other code records with one call, <see cref="RecordEvent"/>; this file also records what the node itself sees:
/// its start (saying when the stop before it was not clean), its clean stop, a store that fails its checks, and peers
/// its status polls stop (or start again) reaching. Leadership and membership changes come from the loop
/// (NodeHost.Events.cs). Served to clients by the administrative operation events.read.
/// </summary>
public sealed partial class ClusterNode
{
    private readonly EventStore _events;
    private readonly ConcurrentDictionary<int, bool> _peerReachable = new();
    private volatile bool _started;

    /// <summary>
    /// Records one event in this node's history and the node's log. <paramref name="shard"/>: the shard it is about (null:
    /// the node as a whole); <paramref name="term"/>: that shard's term (default: the term this node has for it now).
    /// Thread-safe, never throws (a history that cannot be written must not fail the operation it describes).
    /// </summary>
    internal void RecordEvent(ReplicationEventType type, string message, int? shard = null, long? term = null)
    {
        long t = term ?? (shard is int s && _host.Status.TryGetValue(s, out var st) ? st.Term : 0);
        if (shard == ClusterMetadata.MetadataGroup)
        {
            shard = null; // not a shard an operator can name: the node's own entry, saying which group
            message = "Metadata group: " + message;
        }
        Log($"event {type}: {message}");
        try
        {
            _events.Append(new ReplicationEvent { Time = DateTimeOffset.UtcNow, Node = NodeId, Shard = shard, Term = t, Type = type, Message = message });
        }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or IOException or ObjectDisposedException)
        {
            Log($"node {NodeId} could not record event {type}: {e.Message}");
        }
    }

    private EventStore OpenEvents(string folder)
    {
        var store = EventStore.Open(folder, out string? damaged);
        if (damaged is not null)
            store.Append(new ReplicationEvent
            {
                Time = DateTimeOffset.UtcNow, Node = _identity.NodeId, Type = ReplicationEventType.StorageCorrupt,
                Message = $"The event history ({EventStore.FileName}) could not be opened and was set aside as {EventStore.FileName}.damaged; a new one begins: {damaged}",
            });
        return store;
    }

    /// <summary>After a successful start: NodeStarted, saying whether the previous stop was clean (a NodeStopped event).</summary>
    private void NoteStarted()
    {
        var previous = _events.Read(null, Array.Empty<ReplicationEventType>(), Array.Empty<int>(), last: null)
            .LastOrDefault(e => e.Node == NodeId && e.Type is ReplicationEventType.NodeStarted or ReplicationEventType.NodeStopped);
        string how = previous is null ? "for the first time"
            : previous.Type == ReplicationEventType.NodeStopped ? "after a clean stop"
            : $"after an unclean stop (killed, crashed or failed; it had started at {previous.Time:O})";
        _started = true;
        RecordEvent(ReplicationEventType.NodeStarted, $"Node {NodeId} started {how}, listening on {Endpoint}" + (_options.DiscardStores ? ", its stores discarded, waiting to be rebuilt." : "."));
    }

    private void NoteStartFailed(Exception e)
    {
        if (e is StorageCorruptException)
            RecordEvent(ReplicationEventType.StorageCorrupt, $"Node {NodeId} refused to start: a store failed its checks: {e.Message}");
    }

    /// <summary>At a stop: NodeStopped for a clean one (nothing for a kill, as after a crash), then the history closes.</summary>
    private void NoteStopped(bool kill)
    {
        if (_started && !kill)
            RecordEvent(ReplicationEventType.NodeStopped, _host.FailureReason is { } failure
                ? $"Node {NodeId} stopped after a storage failure: {failure}"
                : $"Node {NodeId} stopped cleanly.");
    }

    /// <summary>Called by each status poll of a peer: records the moments a peer stops and starts answering.</summary>
    private void NotePeerReachable(int peer, bool reachable, string? why)
    {
        bool changed = _peerReachable.TryGetValue(peer, out bool was) ? was != reachable : !reachable;
        _peerReachable[peer] = reachable;
        if (!changed) return;
        if (reachable) RecordEvent(ReplicationEventType.NodeReachable, $"Node {NodeId} reaches node {peer} again.");
        else RecordEvent(ReplicationEventType.NodeUnreachable, $"Node {NodeId} cannot reach node {peer}: {why}.");
    }

    /// <summary>The administrative operation events.read: this node's history, filtered.</summary>
    private IReadOnlyList<ReplicationEvent> ReadEvents(EventsArgs args) =>
        _events.Read(args.Since, args.Types ?? Array.Empty<ReplicationEventType>(), args.Shards ?? Array.Empty<int>(), args.Last);
}
