using Microsoft.Data.Sqlite;

namespace Replication.Engine.Tests.Storage;

/// <summary>A fresh folder under the system temp path, deleted (with any SQLite files in it) on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "replication-storage-" + Guid.NewGuid().ToString("N"));

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>An unpooled connection for tampering with a store's file behind its back.</summary>
    public static SqliteConnection Raw(string file)
    {
        var conn = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Pooling = false }.ToString());
        conn.Open();
        return conn;
    }

    public static void Exec(string file, string sql, params (string Name, object Value)[] args)
    {
        using var conn = Raw(file);
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in args) cmd.Parameters.AddWithValue(name, value);
        cmd.ExecuteNonQuery();
    }

    // Stores release their own connections (KvStore clears its reader pool on Dispose), so no
    // global ClearAllPools here: it would reach into tests running in parallel.
    public void Dispose() => Directory.Delete(Path, recursive: true);
}
