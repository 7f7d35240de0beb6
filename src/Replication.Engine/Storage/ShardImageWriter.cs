using System.Buffers.Binary;
using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// The receiving side of a shard image (<see cref="ShardImageReader"/>, which documents the stream format and why the
/// copy is consistent): writes the stream's database part to the target file and its WAL part to target + "-wal", then
/// <see cref="Complete"/> lets SQLite recover the WAL, checks the result and checkpoints it, leaving one self-contained
/// database file (still in WAL mode: the mode is in the file's header) with no -wal or -shm beside it.
///
/// <para>Contract: the target must not exist (the caller passes a fresh staging name and renames the file into place
/// once <see cref="Complete"/> returned; the rename, and an fsync of the folder to make it durable, are the caller's).
/// A stale -wal or -shm of that name, left by a crashed earlier attempt, is replaced: SQLite would otherwise recover
/// the new database with the old WAL. Damage is detected early where it can be: the header's CRC once its 28 bytes
/// arrived, bytes past the trailer at once, the whole stream's CRC once the trailer arrived. Any failure, and
/// <see cref="Dispose"/> before <see cref="Complete"/> succeeded, deletes the files written (target, -wal, -shm).</para>
///
/// Not thread-safe: one caller writes the stream.
/// </summary>
public sealed class ShardImageWriter : IDisposable
{
    /// <summary>Largest length the header may give the database or the WAL part (64 TiB): a bound, so that a header that
    /// passed its CRC but was written by a broken sender cannot overflow the lengths' sum.</summary>
    private const long MaxPartLength = 1L << 46;

    private enum Stage { Header, Database, Wal, Trailer, Ended, Completed, Failed }

    private readonly string _target, _walPath, _shmPath;
    private FileStream? _db, _wal;
    private readonly byte[] _header = new byte[ShardImageReader.HeaderSize];
    private readonly byte[] _trailer = new byte[ShardImageReader.TrailerSize];
    private int _headerFill, _trailerFill;
    private long _dbLength, _walLength, _dbWritten, _walWritten, _received;
    private uint _crc;
    private Stage _stage;
    private bool _walSuperseded;
    private bool _disposed;

    /// <summary>Creates <paramref name="targetPath"/> (it must not exist) and its -wal file, ready for the stream.</summary>
    /// <exception cref="IOException">The target exists (or cannot be created).</exception>
    public ShardImageWriter(string targetPath)
    {
        _target = Path.GetFullPath(targetPath);
        _walPath = _target + "-wal";
        _shmPath = _target + "-shm";
        // CreateNew: a name that exists is refused rather than overwritten (class summary).
        _db = new FileStream(_target, FileMode.CreateNew, FileAccess.Write, FileShare.None, ShardImageReader.BufferSize);
        try
        {
            File.Delete(_shmPath);
            _wal = new FileStream(_walPath, FileMode.Create, FileAccess.Write, FileShare.None, ShardImageReader.BufferSize);
        }
        catch
        {
            _db.Dispose();
            File.Delete(_target);
            throw;
        }
    }

    /// <summary>Bytes of the stream received so far.</summary>
    public long Received => _received;

    /// <summary>The CRC-32C of the whole stream, trailer included, once the trailer has arrived and matched (null before):
    /// the CRC it carries continued over its last 4 bytes, so the receiver of a snapshot stream gets the stream's CRC
    /// without a pass of its own over the bytes (NodeHost's snapshot stream, via Crc32C.Combine).</summary>
    public uint? StreamCrc => _stage is Stage.Ended or Stage.Completed ? Crc32C.Append(_crc, _trailer.AsSpan(4)) : null;

    /// <summary>
    /// Takes the next bytes of the stream, split anywhere (a byte at a time works). Throws
    /// <see cref="StorageCorruptException"/> as soon as the bytes are known to be wrong (a bad header, a trailer that does
    /// not match, bytes past the end), after deleting the files; the writer is then unusable.
    /// </summary>
    public void Write(ReadOnlySpan<byte> bytes)
    {
        ThrowIfUnusable();
        try
        {
            while (!bytes.IsEmpty)
            {
                int n;
                switch (_stage)
                {
                    case Stage.Header:
                        n = Math.Min(bytes.Length, _header.Length - _headerFill);
                        bytes[..n].CopyTo(_header.AsSpan(_headerFill));
                        _crc = Crc32C.Append(_crc, bytes[..n]);
                        _headerFill += n;
                        if (_headerFill == _header.Length) ReadHeader();
                        break;
                    case Stage.Database:
                        n = (int)Math.Min(bytes.Length, _dbLength - _dbWritten);
                        _db!.Write(bytes[..n]);
                        _crc = Crc32C.Append(_crc, bytes[..n]);
                        _dbWritten += n;
                        KickWriteback();
                        if (_dbWritten == _dbLength) _stage = _walLength > 0 ? Stage.Wal : Stage.Trailer;
                        break;
                    case Stage.Wal:
                        n = (int)Math.Min(bytes.Length, _walLength - _walWritten);
                        _wal!.Write(bytes[..n]);
                        _crc = Crc32C.Append(_crc, bytes[..n]);
                        _walWritten += n;
                        if (_walWritten == _walLength) _stage = Stage.Trailer;
                        break;
                    case Stage.Trailer:
                        n = Math.Min(bytes.Length, _trailer.Length - _trailerFill);
                        bytes[..n].CopyTo(_trailer.AsSpan(_trailerFill));
                        _trailerFill += n;
                        if (_trailerFill == _trailer.Length) ReadTrailer();
                        break;
                    default: // Ended
                        throw Corrupt($"the stream goes on past its trailer ({_received} bytes were the whole image)");
                }
                bytes = bytes[n..];
                _received += n;
            }
        }
        catch
        {
            Fail();
            throw;
        }
    }

    private void ReadHeader()
    {
        if (!_header.AsSpan(0, 4).SequenceEqual(ShardImageReader.Magic))
            throw Corrupt("it does not start with a shard image header");
        if (BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(24)) != Crc32C.Compute(_header.AsSpan(0, 24)))
            throw Corrupt("its header fails its CRC");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(4));
        if (version != ShardImageReader.FormatVersion)
            throw Corrupt($"its format version is {version}; this build knows only {ShardImageReader.FormatVersion}");
        _dbLength = BinaryPrimitives.ReadInt64LittleEndian(_header.AsSpan(8));
        _walLength = BinaryPrimitives.ReadInt64LittleEndian(_header.AsSpan(16));
        if (_dbLength is < 0 or > MaxPartLength || _walLength is < 0 or > MaxPartLength
            || (_walLength > 0 && _walLength < ShardImageReader.WalHeaderSize))
            throw Corrupt($"its header gives impossible lengths (database {_dbLength}, WAL {_walLength})");
        _stage = _dbLength > 0 ? Stage.Database : _walLength > 0 ? Stage.Wal : Stage.Trailer;
    }

    private void ReadTrailer()
    {
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(_trailer);
        _crc = Crc32C.Append(_crc, _trailer.AsSpan(0, 4));
        if (BinaryPrimitives.ReadUInt32LittleEndian(_trailer.AsSpan(4)) != _crc)
            throw Corrupt("it fails its CRC (damaged in transit)");
        if ((flags & ~ShardImageReader.FlagWalSuperseded) != 0)
            throw Corrupt($"its trailer has unknown flags 0x{flags.ToString("x", CultureInfo.InvariantCulture)}");
        _walSuperseded = (flags & ShardImageReader.FlagWalSuperseded) != 0;
        _stage = Stage.Ended;
    }

    /// <summary>
    /// Finishes the image: checks that the stream ended exactly (trailer verified), fsyncs both files, opens the database
    /// with SQLite (which recovers the WAL), runs quick_check, checkpoints the WAL into the file (TRUNCATE), closes the
    /// connection and fsyncs the database file. On return <c>targetPath</c> is a complete, durable database and no -wal
    /// or -shm remains. On failure the files are deleted.
    /// </summary>
    /// <exception cref="StorageCorruptException">The stream was cut short, or the database fails SQLite's checks.</exception>
    public void Complete()
    {
        ThrowIfUnusable();
        try
        {
            if (_stage != Stage.Ended)
            {
                long expected = _stage == Stage.Header ? -1 : ShardImageReader.HeaderSize + _dbLength + _walLength + ShardImageReader.TrailerSize;
                throw Corrupt(expected < 0
                    ? $"the stream ended after {_received} bytes, inside its header"
                    : $"the stream ended after {_received} of its {expected} bytes");
            }
            CloseDurably(ref _db);
            CloseDurably(ref _wal);
            // A superseded WAL (a restart overtook its copy: ShardImageReader) and an empty one are not recovered at all.
            if (_walSuperseded || _walLength == 0) File.Delete(_walPath);
            RecoverAndCheckpoint();
            using (var db = new FileStream(_target, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 1))
                db.Flush(flushToDisk: true);
            _stage = Stage.Completed;
        }
        catch
        {
            Fail();
            throw;
        }
    }

    /// <summary>Bytes of the database part handed to the kernel's writeback so far (<see cref="KickWriteback"/>).</summary>
    private long _kicked;

    /// <summary>Every <see cref="WritebackStep"/> bytes of the database part written.</summary>
    private const long WritebackStep = 4L << 20;

    /// <summary>
    /// On Linux, starts the disk writes of the database part received so far, in steps of <see cref="WritebackStep"/>,
    /// without waiting for them (sync_file_range, SYNC_FILE_RANGE_WRITE): the image reaches the disk while it streams,
    /// instead of in one burst at <see cref="Complete"/>'s fsync, which every other fsync on the disk (the node's and its
    /// peers' Raft logs) queued behind. Durability is still <see cref="Complete"/>'s fsync.
    /// </summary>
    private void KickWriteback()
    {
        if (!OperatingSystem.IsLinux() || _dbWritten - _kicked < WritebackStep) return;
        _db!.Flush(flushToDisk: false);
        _ = SyncFileRange((int)_db.SafeFileHandle.DangerousGetHandle(), _kicked, _dbWritten - _kicked, SyncFileRangeWrite);
        _kicked = _dbWritten;
    }

    private const uint SyncFileRangeWrite = 2;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static extern int SyncFileRange(int fd, long offset, long nbytes, uint flags);

    private static void CloseDurably(ref FileStream? file)
    {
        file!.Flush(flushToDisk: true);
        file.Dispose();
        file = null;
    }

    /// <summary>SQLite's WAL recovery runs when the first connection reads a database whose -wal has no -shm beside it.</summary>
    private void RecoverAndCheckpoint()
    {
        // Unpooled: closing must really close, so that SQLite, as the last connection, removes the -wal and -shm.
        using (var conn = new SqliteConnection(new SqliteConnectionStringBuilder
               {
                   DataSource = _target,
                   Mode = SqliteOpenMode.ReadWrite,
                   Pooling = false,
               }.ToString()))
        {
            StorageErrors.MapCorruption(_target, () =>
            {
                conn.Open();
                SqliteSetup.Execute(conn, $"PRAGMA busy_timeout={SqliteSetup.BusyTimeoutMs.ToString(CultureInfo.InvariantCulture)};");
                return 0;
            });
            SqliteSetup.QuickCheck(conn, _target);
            var (busy, log, checkpointed) = StorageErrors.MapCorruption(_target, () =>
            {
                using var cmd = conn.CreateCommand();
                cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
                using var r = cmd.ExecuteReader();
                // One row: busy (1 if it could not finish), frames in the WAL, frames checkpointed.
                r.Read();
                return (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2));
            });
            if (busy != 0 || log != checkpointed)
                throw new IOException($"'{_target}': the checkpoint of the received WAL did not finish (busy {busy}, {checkpointed} of {log} frames).");
        }
        // SQLite deletes both files when its last connection closes; an empty -wal left behind (a build that keeps it)
        // holds nothing, and a -shm is only an index of it.
        if (File.Exists(_walPath))
        {
            if (new FileInfo(_walPath).Length != 0)
                throw new IOException($"'{_walPath}' still holds frames after its checkpoint and close.");
            File.Delete(_walPath);
        }
        File.Delete(_shmPath);
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_stage == Stage.Failed) throw new InvalidOperationException("The shard image writer failed earlier; its files are deleted.");
        if (_stage == Stage.Completed) throw new InvalidOperationException("The shard image is already complete.");
    }

    private StorageCorruptException Corrupt(string what) =>
        new($"The shard image for '{_target}' is refused: {what}.") { Target = _target };

    /// <summary>Closes and deletes every file written (best effort: the first failure is the one reported).</summary>
    private void Fail()
    {
        _stage = Stage.Failed;
        _db?.Dispose();
        _wal?.Dispose();
        _db = _wal = null;
        foreach (var path in new[] { _target, _walPath, _shmPath })
        {
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>Before <see cref="Complete"/> succeeded: deletes the partial files. After: nothing (the file stays).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        if (_stage != Stage.Completed && _stage != Stage.Failed) Fail();
        _disposed = true;
    }
}
