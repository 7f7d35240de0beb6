using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Replication.Engine.Storage;

/// <summary>
/// A consistent view of one shard of a <see cref="KvStore"/>, for sending it as a Raft snapshot
/// (or backing it up): a read transaction on a connection of its own, so the rows and the
/// applied (<see cref="Index"/>, <see cref="Term"/>) come from the same commit while the node
/// keeps applying (WAL readers do not block the writer, nor the writer them). Rows stream in key
/// order; nothing is materialised. Not thread-safe: one consumer. Dispose ends the transaction.
/// <para>
/// Or, for a shard kept in a file of its own (<see cref="StoreLayout.FilePerShard"/>), an image of that file
/// (<see cref="OpenImage"/>, <see cref="ShardImageReader"/>): its bytes as they lie, sent as the chunks of a snapshot of
/// format <see cref="SnapshotChunkCodec.ImageFormatVersion"/>, which the receiver writes into a file and puts in place of its
/// own (KvStore.InstallImage) instead of inserting rows: the copy then runs at the pace of the files, not of SQLite's inserts.
/// </para>
/// </summary>
public sealed class ShardSnapshotReader : IDisposable
{
    private readonly SqliteConnection _conn = null!;
    private readonly SqliteTransaction _tx = null!;
    private readonly ShardImageReader? _image;

    /// <summary>
    /// Opens an image of the shard's own file <paramref name="file"/> (<see cref="ShardImageReader"/>), its applied index, term
    /// and range read in the image's read transaction. Exact only where no commit runs on the file meanwhile (the node loop
    /// between iterations, where the sender opens it): the image then holds that state and no later one.
    /// </summary>
    internal static ShardSnapshotReader OpenImage(string file, int shard)
    {
        var image = ShardImageReader.Open(file);
        try
        {
            var (index, term, range) = image.ReadShardState(shard);
            return new ShardSnapshotReader(image, shard, index, term, range);
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    private ShardSnapshotReader(ShardImageReader image, int shard, long index, long term, (ulong Start, ulong Last)? range)
    {
        _image = image;
        Shard = shard;
        Index = index;
        Term = term;
        Range = range;
    }

    /// <summary>True for an image of the shard's file (<see cref="OpenImage"/>), false for its rows.</summary>
    public bool IsImage => _image is not null;

    /// <summary>
    /// An image's chunks' CRC-32C (the bytes of every chunk <see cref="ChunkBuffers"/> gave, in order: the format byte, then
    /// the image's stream), once they have all been read: joined from the image's own CRC (ShardImageReader.StreamCrc),
    /// which the reading computed anyway, so the sender makes no second pass over the bytes for the stream's checksum.
    /// </summary>
    /// <exception cref="InvalidOperationException">Rows, or an image not read to its end.</exception>
    internal uint ImageChunksCrc => _image is { } image
        ? Crc32C.Combine(Crc32C.Compute([SnapshotChunkCodec.ImageFormatVersion]), image.StreamCrc, image.Length)
        : throw new InvalidOperationException("Rows have no image CRC: the stream computes theirs chunk by chunk.");

    internal ShardSnapshotReader(string readerConnectionString, int shard)
    {
        Shard = shard;
        _conn = SqliteSetup.OpenReader(readerConnectionString);
        try
        {
            _tx = _conn.BeginTransaction(deferred: true);
            (Index, Term, Range) = ShardDb.ReadState(_conn, _tx, shard); // one statement: the first read fixes the snapshot
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
    /// <exception cref="InvalidOperationException">An image (<see cref="IsImage"/>): its bytes are its chunks, not rows.</exception>
    public IEnumerable<StoredKey> Rows()
    {
        if (_image is not null) throw new InvalidOperationException("An image of a shard's file streams its bytes, not rows.");
        using var cmd = _conn.CreateCommand();
        cmd.Transaction = _tx;
        cmd.CommandText = ShardDb.ScanAllSql;
        cmd.Parameters.AddWithValue("@shard", Shard);
        using var r = cmd.ExecuteReader();
        while (r.Read()) yield return new StoredKey(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3));
    }

    /// <summary>
    /// Every key of the shard as <see cref="Rows"/> gives them, encoded as a snapshot's chunks (<see cref="SnapshotChunkCodec"/>,
    /// about <paramref name="chunkBytes"/> each; the first carries <see cref="Range"/>), lazily, each a new array. A snapshot
    /// stream reads <see cref="ChunkBuffers"/> instead (the same bytes, in pooled buffers).
    /// </summary>
    public IEnumerable<byte[]> Chunks(int chunkBytes)
    {
        foreach (var buffer in ChunkBuffers(chunkBytes))
            using (buffer)
                yield return buffer.Memory.ToArray();
    }

    /// <summary>
    /// <see cref="Chunks"/> in buffers of the snapshot stream's pool (<see cref="SnapshotChunkBuffer"/>): the caller owns each
    /// one it is given and returns it when done (a stream: the transport, once it has encoded the chunk's frame). The rows are
    /// read with SQLite's own statement API, each key and value copied from SQLite's page straight into the chunk as the UTF-8
    /// bytes it holds (state.db's text encoding: SqliteSetup.EnsureSchema): no string, array or boxed value per row, and no
    /// array per chunk. Read through the ADO.NET reader (two arrays per row, then copied again into the chunk), the rows of a
    /// 33 MB shard took 2-3 times the CPU, and the stream was bound by its reading thread (ring bench).
    /// </summary>
    internal IEnumerable<SnapshotChunkBuffer> ChunkBuffers(int chunkBytes)
    {
        if (_image is { } image) return ImageChunks(image, chunkBytes);
        return RowChunks(chunkBytes);
    }

    /// <summary>An image's chunks: its stream (<see cref="ShardImageReader.Read"/>) cut into buffers of
    /// <paramref name="chunkBytes"/> from the snapshot stream's pool, the first led by the format byte
    /// <see cref="SnapshotChunkCodec.ImageFormatVersion"/> (a row chunk's first byte is its format, 1 or 2).</summary>
    private static IEnumerable<SnapshotChunkBuffer> ImageChunks(ShardImageReader image, int chunkBytes)
    {
        chunkBytes = Math.Max(chunkBytes, 2);
        bool first = true, ended = false;
        while (!ended)
        {
            var array = SnapshotChunkBuffer.Rent(chunkBytes);
            int length = 0;
            if (first) array[length++] = SnapshotChunkCodec.ImageFormatVersion;
            while (length < chunkBytes)
            {
                int n = image.Read(array.AsSpan(length, chunkBytes - length));
                if (n == 0)
                {
                    ended = true;
                    break;
                }
                length += n;
            }
            if (length == 0)
            {
                SnapshotChunkBuffer.Return(array); // the stream ended exactly at the last chunk's end
                yield break;
            }
            first = false;
            yield return new SnapshotChunkBuffer(array, length);
        }
    }

    private IEnumerable<SnapshotChunkBuffer> RowChunks(int chunkBytes)
    {
        var db = _conn.Handle!;
        SqliteException.ThrowExceptionForRC(raw.sqlite3_prepare_v2(db, ShardDb.ScanAllSql, out sqlite3_stmt statement), db);
        using (statement)
        using (var writer = new SnapshotChunkWriter(chunkBytes, Range, pooled: true))
        {
            SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_int64(statement, 1, Shard), db);
            _rowPending = false;
            while (true)
            {
                int rc = Step(db, statement, writer);
                if (rc == Done) break;
                if (rc == Closed) yield return writer.TakeBuffer();
            }
            if (writer.Rows > 0 || !writer.Any) yield return writer.TakeBuffer();
        }
    }

    private const int Done = 0, Added = 1, Closed = 2;

    /// <summary>Reads the next row into <paramref name="writer"/>: <see cref="Done"/> when none is left, <see cref="Closed"/>
    /// when the chunk under way is full and must be taken (the row stays current: the next call adds it), else
    /// <see cref="Added"/>. Apart from <see cref="ChunkBuffers"/> because an iterator cannot hold the spans SQLite hands out.</summary>
    private int Step(sqlite3 db, sqlite3_stmt statement, SnapshotChunkWriter writer)
    {
        if (!_rowPending)
        {
            int rc = raw.sqlite3_step(statement);
            if (rc == raw.SQLITE_DONE) return Done;
            if (rc != raw.SQLITE_ROW) SqliteException.ThrowExceptionForRC(rc, db);
        }
        // column_blob of a TEXT value is its bytes in the database's encoding, UTF-8 here, without conversion.
        var key = raw.sqlite3_column_blob(statement, 0);
        var value = raw.sqlite3_column_blob(statement, 1);
        if (!_rowPending && writer.Closes(key.Length, value.Length))
        {
            _rowPending = true;
            return Closed;
        }
        _rowPending = false;
        writer.Add(key, value, raw.sqlite3_column_int64(statement, 2), raw.sqlite3_column_int64(statement, 3));
        return Added;
    }

    /// <summary>The statement's current row is read but not yet added (its chunk was full).</summary>
    private bool _rowPending;

    public void Dispose()
    {
        if (_image is not null)
        {
            _image.Dispose();
            return;
        }
        _tx.Dispose();
        _conn.Dispose();
    }
}
