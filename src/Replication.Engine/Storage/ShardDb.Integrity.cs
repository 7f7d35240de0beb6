namespace Replication.Engine.Storage;

/// <summary>Start-up integrity check and the full-disk probe of state.db (node loop thread only).</summary>
internal sealed partial class ShardDb
{
    /// <summary>
    /// Runs SQLite's <c>PRAGMA quick_check</c> on the whole file: every B-tree page is read and its structure checked,
    /// so a torn or zeroed page anywhere (not only in the rows a restart happens to read) is found before the node
    /// serves from it. Cost: one read of the whole file, 130-200 MB/s on this project's machines (0.8-1.2 s for a
    /// 151 MB state.db of a million keys, measured with the bundled SQLite 3.53); see README "A damaged replica". It
    /// does not verify row contents: SQLite keeps no page checksums, and the bundled build has no checksum VFS
    /// (cksumvfs is a separate extension, and would need a file format with reserved bytes per page). Replica
    /// comparison (Test-ReplicationConsistency) covers contents.
    /// </summary>
    /// <exception cref="StorageCorruptException">The check found a problem, naming the file and the first problems.</exception>
    public void CheckIntegrity()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        SqliteSetup.QuickCheck(_conn, _filePath);
    }

    /// <summary>
    /// Commits one transaction that inserts and deletes a marker row (shard <see cref="int.MinValue"/>, never a real
    /// shard): it changes nothing, but writes a page to the WAL, so it fails with SQLITE_FULL while the disk has no room.
    /// </summary>
    public void Probe()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var tx = _conn.BeginTransaction();
        SqliteSetup.Execute(_conn, tx, $"INSERT INTO applied(shard, idx, term) VALUES({int.MinValue}, 0, 0); DELETE FROM applied WHERE shard = {int.MinValue};");
        tx.Commit();
    }
}
