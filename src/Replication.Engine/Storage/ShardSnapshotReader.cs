using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// A consistent view of one shard of a <see cref="KvStore"/>, for sending it as a Raft snapshot
/// (or backing it up): a read transaction on a connection of its own, so the rows and the
/// applied (<see cref="Index"/>, <see cref="Term"/>) come from the same commit while the node
/// keeps applying (WAL readers do not block the writer, nor the writer them). Rows stream in key
/// order; nothing is materialised. Not thread-safe: one consumer. Dispose ends the transaction.
/// </summary>
public sealed class ShardSnapshotReader : IDisposable
{
    private readonly SqliteConnection _conn;
    private readonly SqliteTransaction _tx;

    internal ShardSnapshotReader(string readerConnectionString, int shard)
    {
        Shard = shard;
        _conn = SqliteSetup.OpenReader(readerConnectionString);
        try
        {
            _tx = _conn.BeginTransaction(deferred: true);
            using var cmd = _conn.CreateCommand();
            cmd.Transaction = _tx;
            // One statement: the applied index and the range come from the same commit (the first read fixes the snapshot).
            cmd.CommandText = "SELECT (SELECT idx FROM applied WHERE shard = @shard), (SELECT term FROM applied WHERE shard = @shard),"
                + " (SELECT start FROM shard_range WHERE shard = @shard), (SELECT last FROM shard_range WHERE shard = @shard)";
            cmd.Parameters.AddWithValue("@shard", shard);
            using var r = cmd.ExecuteReader();
            r.Read();
            if (!r.IsDBNull(0))
            {
                Index = r.GetInt64(0);
                Term = r.GetInt64(1);
            }
            if (!r.IsDBNull(2)) Range = (KvStore.Unsigned(r.GetInt64(2)), KvStore.Unsigned(r.GetInt64(3)));
        }
        catch
        {
            _conn.Dispose();
            throw;
        }
    }

    public int Shard { get; }
    /// <summary>Applied index of the shard in this view (0 when nothing was ever applied).</summary>
    public long Index { get; }
    public long Term { get; }
    /// <summary>The hash range the shard owns in this view if it took part in a split (null: never split); a snapshot carries it.</summary>
    public (ulong Start, ulong Last)? Range { get; }

    /// <summary>Every key of the shard in UTF-8 byte order, as of <see cref="Index"/>.</summary>
    public IEnumerable<StoredKey> Rows()
    {
        using var cmd = _conn.CreateCommand();
        cmd.Transaction = _tx;
        cmd.CommandText = KvStore.ScanAllSql;
        cmd.Parameters.AddWithValue("@shard", Shard);
        using var r = cmd.ExecuteReader();
        while (r.Read()) yield return new StoredKey(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3));
    }

    /// <summary>
    /// <see cref="Rows"/> with key and value as the UTF-8 bytes SQLite holds (state.db's text encoding is UTF-8:
    /// SqliteSetup.EnsureSchema), for a snapshot stream: read as strings and encoded back, every byte was converted twice
    /// (UTF-8 to UTF-16 and back), and reading and encoding the rows is what bounds the stream (ring bench, 33 MB move).
    /// </summary>
    public IEnumerable<(byte[] Key, byte[] Value, long Version, long Index)> Utf8Rows()
    {
        using var cmd = _conn.CreateCommand();
        cmd.Transaction = _tx;
        cmd.CommandText = KvStore.ScanAllSql;
        cmd.Parameters.AddWithValue("@shard", Shard);
        using var r = cmd.ExecuteReader();
        while (r.Read()) yield return (r.GetFieldValue<byte[]>(0), r.GetFieldValue<byte[]>(1), r.GetInt64(2), r.GetInt64(3));
    }

    public void Dispose()
    {
        _tx.Dispose();
        _conn.Dispose();
    }
}
