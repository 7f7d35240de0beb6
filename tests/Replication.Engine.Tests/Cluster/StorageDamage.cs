using System.Buffers.Binary;
using Microsoft.Data.Sqlite;

namespace Replication.Engine.Tests.Cluster;

/// <summary>Damages a SQLite file of a running node as a bad sector would: behind SQLite's back, in a page it does not hold a newer
/// copy of in its WAL (a reader would read that copy, and the damage would stay unseen until a checkpoint overwrote it).</summary>
internal static class StorageDamage
{
    /// <summary>Zeroes one in-use page near the middle of <paramref name="path"/> that no frame of its WAL names; returns its number
    /// (1-based). A small store lives in its WAL until a checkpoint, so one is run first (from a connection of its own: SQLite
    /// coordinates checkpoints between connections), which empties the WAL.</summary>
    public static long ZeroPageOutsideWal(string path)
    {
        long pageSize, pages;
        using (var conn = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWrite, Pooling = false, DefaultTimeout = 30 }.ToString()))
        {
            conn.Open();
            Scalar(conn, "PRAGMA busy_timeout = 10000");
            Scalar(conn, "PRAGMA wal_checkpoint(TRUNCATE)");
            pageSize = Scalar(conn, "PRAGMA page_size");
            pages = Scalar(conn, "PRAGMA page_count");
        }
        var inWal = PagesInWal(path + "-wal", pageSize);
        // Page 1 is the header; the last pages are where new rows land. Search outward from the middle.
        long page = Enumerable.Range(0, (int)pages).Select(i => pages / 2 + (i % 2 == 0 ? i / 2 : -(i / 2 + 1)))
            .First(p => p > 1 && p < pages && !inWal.Contains(p));
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            stream.Position = (page - 1) * pageSize;
            stream.Write(new byte[pageSize]);
            stream.Flush(flushToDisk: true);
        }
        return page;
    }

    /// <summary>Every page number a frame of the WAL names (valid or stale frames alike: staying clear of all of them is the safe side).</summary>
    private static HashSet<long> PagesInWal(string wal, long pageSize)
    {
        var pages = new HashSet<long>();
        if (!File.Exists(wal)) return pages;
        byte[] bytes;
        using (var stream = new FileStream(wal, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
        }
        const int walHeader = 32, frameHeader = 24;
        for (long at = walHeader; at + frameHeader + pageSize <= bytes.Length; at += frameHeader + pageSize)
            pages.Add(BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan((int)at, 4)));
        return pages;
    }

    private static long Scalar(SqliteConnection conn, string sql)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar());
    }
}
