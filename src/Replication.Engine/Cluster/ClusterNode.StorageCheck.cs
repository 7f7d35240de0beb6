using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// The on-demand storage check (Test-ReplicationCluster -Storage): SQLite's <c>PRAGMA quick_check</c> over this node's
/// raft.db and state.db while it runs, the check every start runs already (NodeHost.StartAsync), for damage done since
/// (a bad sector, a torn write the page cache hid). It reads every page of both files, so it is asked for, never run by
/// default: about the cost of reading the files once (KvStore.CheckIntegrity gives the rate; README "Health checks" the
/// figures). It runs on a thread-pool thread over read-only connections of its own: SQLite's WAL lets it read beside the
/// node's loop, which keeps writing (and is never blocked by it). A store that fails is recorded as a StorageCorrupt
/// event; the node goes on serving what it can read (Restore-ReplicationNode rebuilds it from its peers).
/// </summary>
public sealed partial class ClusterNode
{
    /// <summary>The stores this check reads, as named in the node's folder: raft.db, and state.db or every shard's own file.</summary>
    private IEnumerable<string> CheckedStores()
    {
        yield return "raft.db";
        if (KvStore.LayoutIn(_options.Path) != StoreLayout.FilePerShard)
        {
            yield return "state.db";
            yield break;
        }
        foreach (var (_, file) in KvStore.ShardFilesIn(System.IO.Path.Combine(_options.Path, KvStore.ShardFolderName)))
            yield return System.IO.Path.Combine(KvStore.ShardFolderName, System.IO.Path.GetFileName(file));
    }

    private async Task<StoreCheck[]> CheckStorageHereAsync(CancellationToken ct)
    {
        var results = new List<StoreCheck>();
        foreach (string name in CheckedStores())
        {
            string file = System.IO.Path.Combine(_options.Path, name);
            var result = await Task.Run(() => QuickCheck(NodeId, file), ct).ConfigureAwait(false);
            if (result.Problem is { } problem)
                RecordEvent(ReplicationEventType.StorageCorrupt, $"Node {NodeId}: {name} failed SQLite's quick_check on request: {problem}");
            results.Add(result);
        }
        return results.ToArray();
    }

    /// <summary>quick_check of one file on a read-only connection of its own; a failure, SQLite's or the check's, is the answer's Problem.</summary>
    private static StoreCheck QuickCheck(int node, string file)
    {
        var watch = Stopwatch.StartNew();
        long size = File.Exists(file) ? new FileInfo(file).Length : 0;
        string? problem = null;
        try
        {
            var builder = new SqliteConnectionStringBuilder { DataSource = file, Mode = SqliteOpenMode.ReadOnly, Pooling = false };
            using var conn = new SqliteConnection(builder.ToString());
            StorageErrors.MapCorruption(file, () => { conn.Open(); return 0; });
            SqliteSetup.QuickCheck(conn, file);
        }
        catch (StorageCorruptException e) { problem = e.Message; }
        catch (SqliteException e) { problem = $"'{file}' could not be checked: {e.Message}"; }
        return new StoreCheck(node, System.IO.Path.GetFileName(file), file, size, watch.Elapsed.TotalSeconds, problem);
    }
}
