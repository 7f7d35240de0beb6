using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// A read transaction on a node's state.db pinned at one applied index of one shard: opened on the
/// node loop thread right after the apply that reached that index (so no later apply is in it),
/// then read from any ONE thread at a time (a Merkle tree is computed off the loop). WAL keeps the
/// snapshot stable while the node goes on applying; it also keeps the WAL from being checkpointed
/// past it, so dispose it promptly. Own, unpooled connection (query_only).
/// </summary>
internal sealed class ShardSnapshot : IDisposable
{
    private readonly SqliteConnection _conn;
    private readonly SqliteTransaction _tx;

    private ShardSnapshot(SqliteConnection conn, SqliteTransaction tx, int node, int shard, long index, long term, (ulong, ulong)? range)
    {
        Range = range;
        _conn = conn;
        _tx = tx;
        Node = node;
        Shard = shard;
        Index = index;
        Term = term;
    }

    public int Node { get; }
    public int Shard { get; }
    /// <summary>The shard's applied index as this snapshot sees it.</summary>
    public long Index { get; }
    public long Term { get; }
    /// <summary>The hash range the shard owned at <see cref="Index"/> if it took part in a split (null: never split, it owns what the map gives it).</summary>
    public (ulong Start, ulong Last)? Range { get; }

    /// <summary>Begins the read transaction and reads the applied row, which fixes the snapshot.</summary>
    public static ShardSnapshot Begin(string stateDb, int node, int shard)
    {
        var conn = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = stateDb, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        SqliteTransaction? tx = null;
        try
        {
            conn.Open();
            SqliteSetup.Execute(conn, $"PRAGMA busy_timeout={SqliteSetup.BusyTimeoutMs.ToString(CultureInfo.InvariantCulture)}; PRAGMA query_only=1;");
            tx = conn.BeginTransaction(deferred: true);
            var (index, term, range) = ShardDb.ReadState(conn, tx, shard);
            return new ShardSnapshot(conn, tx, node, shard, index, term, range);
        }
        catch
        {
            tx?.Dispose();
            conn.Dispose();
            throw;
        }
    }

    public long Count()
    {
        using var cmd = _conn.CreateCommand();
        cmd.Transaction = _tx;
        cmd.CommandText = "SELECT count(*) FROM kv WHERE shard = @s";
        cmd.Parameters.AddWithValue("@s", Shard);
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>The shard's rows with <paramref name="from"/> &lt;= key &lt; <paramref name="to"/> (null = open) in key order, streamed.</summary>
    public IEnumerable<StoredKey> Rows(string? from = null, string? to = null)
    {
        using var cmd = _conn.CreateCommand();
        cmd.Transaction = _tx;
        cmd.CommandText = "SELECT key, value, version, modified_index FROM kv WHERE shard = @s"
            + (from is null ? "" : " AND key >= @lo") + (to is null ? "" : " AND key < @hi") + " ORDER BY key";
        cmd.Parameters.AddWithValue("@s", Shard);
        if (from is not null) cmd.Parameters.AddWithValue("@lo", from);
        if (to is not null) cmd.Parameters.AddWithValue("@hi", to);
        using var r = cmd.ExecuteReader();
        while (r.Read()) yield return new StoredKey(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3));
    }

    /// <summary>The shard's rows with a key after <paramref name="after"/> (null = from the first), in key order, streamed (an index seek).</summary>
    public IEnumerable<StoredKey> RowsAfter(string? after)
    {
        using var cmd = _conn.CreateCommand();
        cmd.Transaction = _tx;
        cmd.CommandText = "SELECT key, value, version, modified_index FROM kv WHERE shard = @s" + (after is null ? "" : " AND key > @after") + " ORDER BY key";
        cmd.Parameters.AddWithValue("@s", Shard);
        if (after is not null) cmd.Parameters.AddWithValue("@after", after);
        using var r = cmd.ExecuteReader();
        while (r.Read()) yield return new StoredKey(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3));
    }

    public void Dispose()
    {
        _tx.Dispose();
        _conn.Dispose();
    }
}
