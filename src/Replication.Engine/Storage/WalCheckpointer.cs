using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// Runs a store's WAL checkpoints on a thread of its own, so the node loop, which commits, does not copy pages and fsync
/// the database file inline. SQLite's default (the committing connection checkpoints once the WAL holds 1,000 pages) made
/// every import batch's commit on the loop thread pay a checkpoint in turn: `perf` on three node processes during the
/// bench's import put 21% of the loop thread's samples in <c>sqlite3WalCheckpoint</c> under <c>sqlite3_step</c>.
/// <para>
/// How: the writer calls <see cref="NoteWritten"/> after each commit with the rows it changed; past
/// <see cref="PassRows"/> of them this thread wakes and runs a PASSIVE checkpoint on its own connection (it never waits
/// on the writer nor blocks it). A PASSIVE checkpoint cannot let the WAL start over while the writer keeps appending, so
/// the writer keeps SQLite's auto-checkpoint with a larger threshold (<see cref="WriterAutoCheckpointPages"/>, set by the
/// store): when it fires, the frames this thread already copied are not copied again, only the tail since its last pass,
/// and the next commit starts the WAL over. Durability is unchanged: a checkpoint copies committed frames, whoever runs it.
/// </para>
/// Threads: <see cref="NoteWritten"/> from the writer's thread; <see cref="Dispose"/> once, after the writer stopped. The
/// thread starts at the first pass (an idle store has none) and sleeps on a monitor between passes (no idle cost).
/// </summary>
internal sealed class WalCheckpointer : IDisposable
{
    /// <summary>Rows changed between two background passes: about as many WAL pages for random keys (each lands on its own leaf).</summary>
    public const int PassRows = 2048;
    /// <summary>The writer's own auto-checkpoint threshold in pages: the safety valve that lets the WAL start over (class summary).</summary>
    public const int WriterAutoCheckpointPages = 8192;

    private readonly string _filePath;
    private readonly object _gate = new();
    private Thread? _thread;
    private SqliteConnection? _conn;
    private long _pending;
    private bool _signalled;
    private bool _stopping;

    public WalCheckpointer(string filePath) => _filePath = filePath;

    private long _passes;

    /// <summary>Background passes run so far (tests).</summary>
    public long Passes => Interlocked.Read(ref _passes);

    /// <summary>The writer committed <paramref name="rows"/> changed rows; wakes the thread once enough have piled up.</summary>
    public void NoteWritten(long rows)
    {
        _pending += rows;
        if (_pending < PassRows) return;
        _pending = 0;
        lock (_gate)
        {
            if (_stopping) return;
            _signalled = true;
            if (_thread is null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "replication-ckpt" };
                _thread.Start();
            }
            else Monitor.Pulse(_gate);
        }
    }

    private void Run()
    {
        while (true)
        {
            lock (_gate)
            {
                while (!_signalled && !_stopping) Monitor.Wait(_gate);
                if (_stopping) return;
                _signalled = false;
            }
            try
            {
                _conn ??= OpenConnection();
                SqliteSetup.Execute(_conn, "PRAGMA wal_checkpoint(PASSIVE);");
                Interlocked.Increment(ref _passes);
            }
            catch (SqliteException)
            {
                // Not fatal: the writer's own auto-checkpoint still runs (a full disk, a locked file); the next pass tries again.
                _conn?.Dispose();
                _conn = null;
            }
        }
    }

    private SqliteConnection OpenConnection()
    {
        var conn = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = _filePath, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        try
        {
            conn.Open();
            // NORMAL as the writer: the checkpoint syncs the WAL before copying and the database file after.
            SqliteSetup.Execute(conn, "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=0;");
            return conn;
        }
        catch
        {
            conn.Dispose();
            throw;
        }
    }

    /// <summary>Stops the thread (after the pass under way, if any) and closes its connection.</summary>
    public void Dispose()
    {
        Thread? thread;
        lock (_gate)
        {
            if (_stopping) return;
            _stopping = true;
            thread = _thread;
            Monitor.Pulse(_gate);
        }
        thread?.Join();
        _conn?.Dispose();
    }
}
