using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// A node's event history (Get-ReplicationEvent): events.db beside raft.db and state.db, one row per event.
/// <para>
/// Why a file of its own and not the metadata group: an event must be recordable exactly when the cluster is in
/// trouble (a lost quorum, a corrupt store, a node that cannot start), which is when a replicated write cannot be
/// made; and each node knows best what it observed itself. The cluster's history is the merge of every reachable
/// node's (ClusterClient.Events.cs). Apart from the Raft stores so that recording never competes with the log's
/// group commit, and so that a rebuild, which discards raft.db and state.db, keeps the node's history.
/// </para>
/// <para>
/// Durability: WAL with synchronous=NORMAL: a committed event survives the process being killed, not a power
/// loss (events are diagnostics, not data). Bounded: the oldest rows beyond <see cref="MaxEvents"/> are deleted.
/// A damaged events.db never keeps the node from starting: it is set aside and a new history begins, whose first
/// event says so. Thread-safe (one connection, one lock); recording costs one small SQLite commit.
/// </para>
/// </summary>
internal sealed class EventStore : IDisposable
{
    /// <summary>Events kept per node; older ones are dropped.</summary>
    public const int MaxEvents = 10_000;
    private const int PruneEvery = 256;
    internal const int ApplicationId = 0x52504C45; // "RPLE"
    private const int SchemaVersion = 1;
    private const string CreateSql =
        "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, time_us INTEGER NOT NULL, node INTEGER NOT NULL, " +
        "shard INTEGER NULL, term INTEGER NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL);" +
        "CREATE INDEX IF NOT EXISTS events_time ON events(time_us);";

    public const string FileName = "events.db";

    private readonly object _gate = new();
    private readonly SqliteConnection _conn;
    private int _sincePrune;
    private bool _disposed;

    private EventStore(SqliteConnection conn)
    {
        _conn = conn;
    }

    /// <summary>Opens (or creates) the history in <paramref name="folder"/>. <paramref name="damaged"/> says why a
    /// previous file was set aside (null when it opened fine).</summary>
    public static EventStore Open(string folder, out string? damaged)
    {
        string path = Path.Combine(folder, FileName);
        damaged = null;
        try
        {
            return OpenFile(path);
        }
        catch (Exception e) when (e is SqliteException or StorageCorruptException)
        {
            damaged = e.Message;
            SqliteConnection.ClearAllPools();
            string aside = path + ".damaged";
            foreach (var suffix in new[] { "", "-wal", "-shm" })
            {
                if (!File.Exists(path + suffix)) continue;
                File.Move(path + suffix, aside + suffix, overwrite: true);
            }
            return OpenFile(path);
        }
    }

    private static EventStore OpenFile(string path)
    {
        var conn = SqliteSetup.OpenWriter(path, SqliteSynchronous.Normal);
        try
        {
            SqliteSetup.EnsureSchema(conn, path, ApplicationId, SchemaVersion, CreateSql);
            return new EventStore(conn);
        }
        catch
        {
            conn.Dispose();
            throw;
        }
    }

    /// <summary>Appends one event; returns it with its sequence number. After <see cref="Dispose"/> it records nothing
    /// (a node that stopped has nothing more to say) and returns the event unchanged.</summary>
    public ReplicationEvent Append(ReplicationEvent e)
    {
        lock (_gate)
        {
            if (_disposed) return e;
            using var tx = _conn.BeginTransaction();
            using var cmd = _conn.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO events(time_us, node, shard, term, type, message) VALUES ($t, $n, $s, $term, $type, $m) RETURNING seq;";
            cmd.Parameters.AddWithValue("$t", ToMicros(e.Time));
            cmd.Parameters.AddWithValue("$n", e.Node);
            cmd.Parameters.AddWithValue("$s", e.Shard is int s ? s : DBNull.Value);
            cmd.Parameters.AddWithValue("$term", e.Term);
            cmd.Parameters.AddWithValue("$type", e.Type.ToString());
            cmd.Parameters.AddWithValue("$m", e.Message);
            long seq = (long)cmd.ExecuteScalar()!;
            if (++_sincePrune >= PruneEvery)
            {
                _sincePrune = 0;
                SqliteSetup.Execute(_conn, tx, $"DELETE FROM events WHERE seq <= {seq - MaxEvents};");
            }
            tx.Commit();
            return e with { Sequence = seq };
        }
    }

    /// <summary>
    /// Events in the order they were recorded, filtered: at or after <paramref name="since"/>, of one of
    /// <paramref name="types"/> (all when empty), of one of <paramref name="shards"/> (all when empty); only the
    /// <paramref name="last"/> newest when given.
    /// </summary>
    public IReadOnlyList<ReplicationEvent> Read(DateTimeOffset? since, IReadOnlyCollection<ReplicationEventType> types, IReadOnlyCollection<int> shards, int? last)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            using var cmd = _conn.CreateCommand();
            var where = new List<string>();
            if (since is { } from)
            {
                where.Add("time_us >= $since");
                cmd.Parameters.AddWithValue("$since", ToMicros(from));
            }
            if (types.Count > 0) where.Add("type IN (" + string.Join(",", types.Select(t => $"'{t}'")) + ")");
            if (shards.Count > 0) where.Add("shard IN (" + string.Join(",", shards) + ")");
            cmd.CommandText = "SELECT seq, time_us, node, shard, term, type, message FROM events"
                + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "")
                + " ORDER BY seq DESC" + (last is int n ? $" LIMIT {n}" : "") + ";";
            var events = new List<ReplicationEvent>();
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                // A type this build does not know (written by a newer one) is left out rather than failing the read.
                if (!Enum.TryParse<ReplicationEventType>(r.GetString(5), out var type)) continue;
                events.Add(new ReplicationEvent
                {
                    Sequence = r.GetInt64(0),
                    Time = FromMicros(r.GetInt64(1)),
                    Node = r.GetInt32(2),
                    Shard = r.IsDBNull(3) ? null : r.GetInt32(3),
                    Term = r.GetInt64(4),
                    Type = type,
                    Message = r.GetString(6),
                });
            }
            events.Reverse();
            return events;
        }
    }

    private static long ToMicros(DateTimeOffset t) => (t.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;

    private static DateTimeOffset FromMicros(long us) => DateTimeOffset.UnixEpoch.AddTicks(us * 10);

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _conn.Dispose();
        }
    }
}
