using System.Buffers.Binary;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Microsoft.Win32.SafeHandles;

namespace Replication.Engine.Storage;

/// <summary>
/// The sending side of a shard image: the bytes of a live SQLite database in WAL mode, copied "as they lie" (the database
/// file, then the live part of its WAL) while other connections keep committing, so that SQLite's WAL recovery on the
/// receiver (<see cref="ShardImageWriter"/>) yields the database at one commit, at or after the moment
/// <see cref="Open"/> returned. A raw file copy runs at about ten times the rate of re-inserting the rows.
///
/// <para><b>Why the copy is consistent.</b> <see cref="Open"/> starts a read transaction (BEGIN, then a read) and keeps it
/// until <see cref="Dispose"/>. The transaction holds one of SQLite's WAL read marks, and that has two cases:</para>
/// <list type="bullet">
/// <item>Read mark 1-4 (the WAL held frames not yet checkpointed; the usual case). No checkpoint copies frames past the
/// mark M into the database file, and the WAL cannot start over (a restart, and a RESTART or TRUNCATE checkpoint, need
/// every read mark 1-4 free), so WAL frames 1..M stay in place, unchanged, while the file is read. A checkpoint may still
/// copy frames up to M into the database file during the copy, so the copied file may mix page versions (even a torn
/// page), but only pages that frames 1..M hold: recovery on the receiver replays those frames (and any later complete
/// commit that was copied) over them.</item>
/// <item>Read mark 0 (the WAL was wholly checkpointed when the transaction began: the database file alone is the
/// snapshot). No checkpoint can write to the database file at all (it needs mark 0 exclusively), but the WAL CAN start
/// over: a writer (or a TRUNCATE checkpoint) restarts it as soon as no reader holds marks 1-4, and the new frames
/// overwrite the old ones from the start of the file. A copy that read the first old frames before they were overwritten
/// and the later ones after would recover the first old commits over a database file that already holds later ones:
/// an inconsistent mix. So the WAL header is read again once the last WAL byte has been read: unchanged, no frame was
/// overwritten before it (a restart writes the header before its first frame); changed (or gone), the WAL copy is marked
/// superseded in the trailer and the receiver discards it, keeping the database file, which alone is the snapshot.
/// Under mark 1-4 the header cannot change, so the mark does not need to be known.</item>
/// </list>
///
/// <para><b>The live part of the WAL.</b> The WAL file keeps its high-water mark after a restart (it can be 100+ MB with a
/// few MB live), and frames of older generations carry other salts. <see cref="Open"/> reads the 32-byte WAL header
/// (magic 0x377f0682/0x377f0683, page size at 8, salt-1 and salt-2 at 16 and 20, all big-endian) and the 24-byte header of
/// each frame (page number, database size in pages after a commit or 0, salt-1, salt-2, two checksums) from the start,
/// stops at the first frame whose salts differ from the header's or at the WAL's length at open, and sends the header and
/// the frames up to the last commit frame (database size != 0) found: frames after it would be an incomplete transaction
/// that recovery ignores. Frame checksums are not checked here: recovery checks them, and stops at the first bad frame
/// (a frame being written while it was read), which lies past the snapshot's frames. No WAL file, one shorter than its
/// header, one whose header is not a WAL header, or one without a commit frame: no WAL is sent (under mark 1-4 the WAL
/// holds committed frames, so these arise only under mark 0, where the database file is the snapshot).</para>
///
/// <para><b>Lengths.</b> The lengths of the database file and of the WAL part are fixed at open (recorded after the
/// read transaction began) and exactly that many bytes are sent. A file that ends sooner when read (a checkpoint that
/// truncated the database to its size at a commit under mark 1-4; a WAL truncated under mark 0) is padded with zeros:
/// pages past the database size recovery ends with are ignored, and zeroed frames fail their checksums.</para>
///
/// <para><b>Stream format, version 1</b> (integers little-endian):</para>
/// <code>
///   header   28 bytes: "RPLI", u32 version (1), i64 database length, i64 WAL length, u32 CRC-32C of the 24 bytes before it
///   database (database length) bytes of the database file, from offset 0
///   wal      (WAL length) bytes of the WAL file, from offset 0 (0 bytes: no WAL)
///   trailer  8 bytes: u32 flags (bit 0: WAL superseded, discard it), u32 CRC-32C of every byte before it (header to flags)
/// </code>
///
/// <para><b>Reads</b> are positioned reads of the caller's buffer size (pass 256 KiB-1 MiB: <see cref="BufferSize"/>), on
/// handles opened with FileShare.ReadWrite|Delete and sequential-scan hints, so the committing connections are not
/// disturbed. On POSIX systems closing any descriptor of a file drops every fcntl lock this process holds on it,
/// SQLite's included (sqlite.org/howtocorrupt.html, 2.2): SQLite keeps its own locks between connections of one process
/// in memory, so only another process that opens the same database could be misled; the handles are therefore closed
/// once, at <see cref="Dispose"/>, and a shard's file must not be shared with another process while it is imaged.</para>
///
/// Not thread-safe: one caller reads the stream. <see cref="Dispose"/> ends the read transaction (from then on
/// checkpoints may proceed past it) and closes the connection and the files.
/// </summary>
public sealed class ShardImageReader : IDisposable
{
    /// <summary>"RPLI", the first four bytes of a shard image.</summary>
    internal static ReadOnlySpan<byte> Magic => "RPLI"u8;
    public const int FormatVersion = 1;
    public const int HeaderSize = 28;
    public const int TrailerSize = 8;
    /// <summary>Trailer flag: the WAL started over while it was read (read mark 0, class summary); the receiver drops the
    /// WAL part and the database part alone is the image.</summary>
    internal const uint FlagWalSuperseded = 1;
    /// <summary>A good buffer size for <see cref="Read"/>: each call reads the files in pieces of the buffer's size.</summary>
    public const int BufferSize = 1 << 20;

    internal const int WalHeaderSize = 32;
    internal const int WalFrameHeaderSize = 24;
    private const uint WalMagicLittleEndianChecksums = 0x377f0682, WalMagicBigEndianChecksums = 0x377f0683;

    private readonly SqliteConnection _conn;
    private readonly SqliteTransaction _tx;
    private readonly SafeFileHandle _db;
    private readonly SafeFileHandle? _wal;
    private readonly byte[] _header = new byte[HeaderSize];
    /// <summary>The WAL header read at open: the one whose salts chose the frames sent, and the one sent.</summary>
    private readonly byte[] _walHeader = new byte[WalHeaderSize];
    private byte[]? _trailer;
    private long _position;
    private uint _crc;
    private bool _disposed;

    private ShardImageReader(SqliteConnection conn, SqliteTransaction tx, SafeFileHandle db, SafeFileHandle? wal)
    {
        _conn = conn;
        _tx = tx;
        _db = db;
        _wal = wal;
    }

    /// <summary>Bytes of the database file the image holds (its length at open).</summary>
    public long DatabaseLength { get; private set; }

    /// <summary>Bytes of the WAL the image holds: its header and live frames up to the last commit (0: no WAL).</summary>
    public long WalLength { get; private set; }

    /// <summary>The WAL file's length at open (diagnostics: the WAL part is its live prefix).</summary>
    public long WalFileLength { get; private set; }

    /// <summary>Bytes of the whole stream: header, database, WAL, trailer.</summary>
    public long Length => HeaderSize + DatabaseLength + WalLength + TrailerSize;

    /// <summary>Bytes of the stream read so far.</summary>
    public long Position => _position;

    /// <summary>Known once the stream was read to its end: true when the WAL started over while it was read, so the
    /// image is the database file alone (class summary, read mark 0).</summary>
    public bool WalSuperseded { get; private set; }

    /// <summary>
    /// Starts an image of the WAL-mode database at <paramref name="dbPath"/>: opens a connection of its own (unpooled,
    /// query_only), begins a deferred read transaction and reads, so the transaction holds a WAL read snapshot, then
    /// records the files' lengths and finds the WAL's live part (class summary).
    /// </summary>
    /// <exception cref="FileNotFoundException">No file at <paramref name="dbPath"/>.</exception>
    /// <exception cref="InvalidOperationException">The database is not in WAL mode: a read transaction would hold a lock
    /// that blocks every commit for as long as the copy runs.</exception>
    public static ShardImageReader Open(string dbPath)
    {
        if (!File.Exists(dbPath)) throw new FileNotFoundException($"No database at '{dbPath}'.", dbPath);
        // ReadWrite, not ReadOnly: a WAL reader must be able to create the -shm file (as SqliteSetup's readers).
        // Unpooled: Dispose must really end the transaction and release the file.
        var conn = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = dbPath,
            Mode = SqliteOpenMode.ReadWrite,
            Pooling = false,
        }.ToString());
        SqliteTransaction? tx = null;
        SafeFileHandle? db = null, wal = null;
        try
        {
            conn.Open();
            SqliteSetup.Execute(conn,
                $"PRAGMA busy_timeout={SqliteSetup.BusyTimeoutMs.ToString(CultureInfo.InvariantCulture)};" +
                "PRAGMA query_only=1;");
            string mode = SqliteSetup.Pragma(conn, "journal_mode");
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                throw new InvalidOperationException($"'{dbPath}' is not in WAL mode (journal_mode is '{mode}'); a shard image needs WAL mode.");
            tx = conn.BeginTransaction(deferred: true);
            // The first read takes the WAL read mark: from here on the snapshot, and what checkpoints may do, are fixed.
            SqliteSetup.ExecuteScalarLong(conn, tx, "SELECT count(*) FROM sqlite_master;");

            // Lengths are taken after the snapshot: a checkpoint may grow the file afterwards only with frames the WAL part holds.
            db = OpenShared(dbPath) ?? throw new FileNotFoundException($"'{dbPath}' vanished while an image of it was opened.", dbPath);
            wal = OpenShared(dbPath + "-wal");
            var reader = new ShardImageReader(conn, tx, db, wal) { DatabaseLength = RandomAccess.GetLength(db) };
            if (wal is not null) reader.FindLiveWal();
            reader.WriteHeader();
            return reader;
        }
        catch
        {
            wal?.Dispose();
            db?.Dispose();
            tx?.Dispose();
            conn.Dispose();
            throw;
        }
    }

    /// <summary>The applied index and term and the hash range of <paramref name="shard"/> in the image's snapshot (a state file,
    /// ShardDb's schema), read in the image's own read transaction: what the image holds when it is opened where no commit
    /// runs on the file (KvStore.OpenSnapshot).</summary>
    internal (long Index, long Term, (ulong Start, ulong Last)? Range) ReadShardState(int shard)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return ShardDb.ReadState(_conn, _tx, shard);
    }

    private static SafeFileHandle? OpenShared(string path)
    {
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.SequentialScan);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Sets <see cref="WalLength"/> to the WAL header and the frames of its generation up to the last commit frame
    /// within the length at open, and keeps the header read (class summary).</summary>
    private void FindLiveWal()
    {
        WalFileLength = RandomAccess.GetLength(_wal!);
        if (WalFileLength < WalHeaderSize || RandomAccess.Read(_wal!, _walHeader, 0) < WalHeaderSize) return;
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(_walHeader);
        uint pageSize = BinaryPrimitives.ReadUInt32BigEndian(_walHeader.AsSpan(8));
        if (magic is not (WalMagicLittleEndianChecksums or WalMagicBigEndianChecksums)
            || pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) != 0)
            return;
        ulong salts = BinaryPrimitives.ReadUInt64BigEndian(_walHeader.AsSpan(16));
        long frameSize = WalFrameHeaderSize + pageSize;
        long liveEnd = 0;
        Span<byte> frame = stackalloc byte[WalFrameHeaderSize];
        for (long at = WalHeaderSize; at + frameSize <= WalFileLength; at += frameSize)
        {
            if (RandomAccess.Read(_wal!, frame, at) < WalFrameHeaderSize) break;
            if (BinaryPrimitives.ReadUInt64BigEndian(frame[8..]) != salts) break; // an older generation's frame
            if (BinaryPrimitives.ReadUInt32BigEndian(frame[4..]) != 0) liveEnd = at + frameSize; // a commit frame
        }
        WalLength = liveEnd;
    }

    private void WriteHeader()
    {
        Magic.CopyTo(_header);
        BinaryPrimitives.WriteUInt32LittleEndian(_header.AsSpan(4), FormatVersion);
        BinaryPrimitives.WriteInt64LittleEndian(_header.AsSpan(8), DatabaseLength);
        BinaryPrimitives.WriteInt64LittleEndian(_header.AsSpan(16), WalLength);
        BinaryPrimitives.WriteUInt32LittleEndian(_header.AsSpan(24), Crc32C.Compute(_header.AsSpan(0, 24)));
    }

    /// <summary>
    /// Copies the next bytes of the stream into <paramref name="buffer"/>, as many as fit (the files are read in pieces of
    /// the buffer's size), and returns how many; 0 once the stream has ended (like <see cref="Stream.Read(Span{byte})"/>).
    /// </summary>
    public int Read(Span<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long dbEnd = HeaderSize + DatabaseLength, walEnd = dbEnd + WalLength;
        int total = 0;
        while (total < buffer.Length && _position < Length)
        {
            var dest = buffer[total..];
            int n;
            if (_position < HeaderSize)
            {
                n = Copy(_header.AsSpan((int)_position), dest);
                _crc = Crc32C.Append(_crc, dest[..n]);
            }
            else if (_position < dbEnd)
            {
                n = ReadFile(_db, _position - HeaderSize, dest, dbEnd - _position);
                _crc = Crc32C.Append(_crc, dest[..n]);
            }
            else if (_position < walEnd)
            {
                long at = _position - dbEnd;
                n = at < WalHeaderSize
                    ? Copy(_walHeader.AsSpan((int)at), dest)
                    : ReadFile(_wal!, at, dest, walEnd - _position);
                _crc = Crc32C.Append(_crc, dest[..n]);
            }
            else
            {
                _trailer ??= Trailer();
                n = Copy(_trailer.AsSpan((int)(_position - walEnd)), dest);
            }
            total += n;
            _position += n;
        }
        return total;
    }

    /// <summary>The CRC-32C of the whole stream, trailer included, once <see cref="Read"/> has returned its last byte: the
    /// CRC the trailer carries (over every byte before it) continued over the trailer's last 4 bytes, so the stream's
    /// consumers need no pass of their own over its bytes (NodeHost's snapshot stream, via Crc32C.Combine).</summary>
    /// <exception cref="InvalidOperationException">The stream has not been read to its end.</exception>
    internal uint StreamCrc => _position == Length && _trailer is not null
        ? Crc32C.Append(_crc, _trailer.AsSpan(4))
        : throw new InvalidOperationException("The image has not been read to its end.");

    private static int Copy(ReadOnlySpan<byte> from, Span<byte> to)
    {
        int n = Math.Min(from.Length, to.Length);
        from[..n].CopyTo(to);
        return n;
    }

    /// <summary>Reads up to <paramref name="left"/> bytes of a file at <paramref name="offset"/>; past the file's end (it
    /// shrank since open) zeros (class summary, "Lengths").</summary>
    private static int ReadFile(SafeFileHandle file, long offset, Span<byte> dest, long left)
    {
        var span = dest[..(int)Math.Min(dest.Length, left)];
        int n = RandomAccess.Read(file, span, offset);
        if (n > 0) return n;
        span.Clear();
        return span.Length;
    }

    /// <summary>The trailer, built once every byte before it was read: the WAL header is checked again here, after the
    /// last WAL byte was read (class summary, read mark 0).</summary>
    private byte[] Trailer()
    {
        if (WalLength > 0)
        {
            Span<byte> now = stackalloc byte[WalHeaderSize];
            WalSuperseded = RandomAccess.Read(_wal!, now, 0) < WalHeaderSize || !now.SequenceEqual(_walHeader);
        }
        var trailer = new byte[TrailerSize];
        BinaryPrimitives.WriteUInt32LittleEndian(trailer, WalSuperseded ? FlagWalSuperseded : 0);
        _crc = Crc32C.Append(_crc, trailer.AsSpan(0, 4));
        BinaryPrimitives.WriteUInt32LittleEndian(trailer.AsSpan(4), _crc);
        return trailer;
    }

    /// <summary>Ends the read transaction (checkpoints may then pass it), closes the connection, then the files.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _tx.Dispose();
        _conn.Dispose();
        _wal?.Dispose();
        _db.Dispose();
    }
}
