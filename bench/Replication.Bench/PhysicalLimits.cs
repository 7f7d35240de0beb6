using System.Diagnostics;
using Microsoft.Data.Sqlite;

/// <summary>
/// The physical limits of the disk the cluster writes to, measured in the same temp folder:
/// a bare write + fsync loop (fsyncs/s: the ceiling for one durable commit at a time), and raw
/// SQLite inserts (WAL, synchronous=FULL, one transaction per batch) of random keys into a
/// WITHOUT ROWID table, as the state machine stores them. Each phase is bounded in count and time.
/// </summary>
internal static class PhysicalLimits
{
    public static double FsyncsPerSecond(string folder, int maxOps, TimeSpan limit)
    {
        string file = Path.Combine(folder, "fsync-probe.bin");
        var block = new byte[4096];
        Random.Shared.NextBytes(block);
        int ops = 0;
        var watch = Stopwatch.StartNew();
        using (var fs = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.None))
        {
            while (ops < maxOps && watch.Elapsed < limit)
            {
                fs.Write(block);
                fs.Flush(flushToDisk: true);
                ops++;
            }
        }
        watch.Stop();
        File.Delete(file);
        return ops / watch.Elapsed.TotalSeconds;
    }

    public static double SqliteRowsPerSecond(string folder, int batch, int maxRows, TimeSpan limit)
    {
        string file = Path.Combine(folder, $"sqlite-probe-{batch}.db");
        long rows = 0;
        var random = new Random(42);
        Stopwatch watch;
        using (var conn = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Pooling = false }.ToString()))
        {
            conn.Open();
            using (var setup = conn.CreateCommand())
            {
                setup.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;" +
                    "CREATE TABLE kv(shard INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, version INTEGER NOT NULL, modified_index INTEGER NOT NULL, PRIMARY KEY(shard, key)) WITHOUT ROWID;";
                setup.ExecuteNonQuery();
            }
            using var insert = conn.CreateCommand();
            insert.CommandText = "INSERT OR REPLACE INTO kv VALUES(0, @k, @v, 1, @i)";
            var k = insert.Parameters.Add("@k", SqliteType.Text);
            var v = insert.Parameters.Add("@v", SqliteType.Text);
            var i = insert.Parameters.Add("@i", SqliteType.Integer);
            insert.Prepare();
            string value = "value-" + new string('x', 64);
            watch = Stopwatch.StartNew();
            while (rows < maxRows && watch.Elapsed < limit)
            {
                using var tx = conn.BeginTransaction();
                insert.Transaction = tx;
                for (int n = 0; n < batch; n++, rows++)
                {
                    k.Value = $"bench:{random.Next():D10}";
                    v.Value = value;
                    i.Value = rows;
                    insert.ExecuteNonQuery();
                }
                tx.Commit();
            }
            watch.Stop();
        }
        foreach (var f in Directory.GetFiles(folder, Path.GetFileName(file) + "*")) File.Delete(f);
        return rows / watch.Elapsed.TotalSeconds;
    }
}
