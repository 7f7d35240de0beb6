using System.Diagnostics;
using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// Runs a SQLite file's WAL checkpoints off the writer's thread, so the node loop, which commits, does not copy pages and fsync
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
/// <para>
/// While a snapshot's rows are stored (KvStore.PauseAutoCheckpoint) the writer does not checkpoint at all: each stored batch
/// <see cref="Nudge"/>s a pass, and before the install's durable commit the loop asks for one (<see cref="Request"/>,
/// <see cref="IsDone"/>) so that commit fsyncs only the tail (bench --only snapshot-parts, a 33 MB install at load 13-25:
/// per-chunk transaction p99 37-307 ms with the writer's auto-checkpoint, 9-54 ms with this thread).
/// </para>
/// Threads: <see cref="NoteWritten"/>, <see cref="Nudge"/>, <see cref="Request"/> and <see cref="IsDone"/> from the writer's
/// thread; <see cref="Dispose"/> once, after the writer stopped. The passes run on a <see cref="CheckpointWorker"/>: the
/// file's own, or one that a store of a file per shard shares among its files (one thread per node, not per shard).
/// </summary>
internal sealed class WalCheckpointer : IDisposable
{
    /// <summary>
    /// Rows changed between two background passes: about as many WAL pages for random keys (each lands on its own leaf). Small,
    /// because a pass is a burst on the disk: it fsyncs the WAL and then the database file, about 2 x 8 KiB per row, and every
    /// other fsync on the disk (raft.db's, which every write waits for, on this node and its neighbours) queues behind it. At
    /// 2,048 rows (32 MB per pass) a pass took 94 ms at the median and up to 200 ms at 64 writers, and raft.db saves stalled
    /// with it (up to 190 ms on all three nodes at once); at 256 rows (4 MB), write p99 at 16 and 64 clients fell from 46-51
    /// and 96-107 ms to 28-31 and 54-57 ms (builds alternated, bench 2026-11-30 19:40), throughput and import unchanged
    /// within the noise. The price: fewer repeated pages merged per pass, 19 -> 26 KB written per write and node.
    /// </summary>
    public const int PassRows = 256;
    /// <summary>The writer's own auto-checkpoint threshold in pages: the safety valve that lets the WAL start over (class summary).</summary>
    public const int WriterAutoCheckpointPages = 8192;

    private readonly string _filePath;
    private readonly CheckpointWorker _worker;
    private readonly bool _ownsWorker;
    private SqliteConnection? _conn; // the worker's thread, but for Abandon's interrupt of a pass under way
    private long _pending; // the writer's thread only
    private long _passes;

    // Pass state, under the worker's Gate (CheckpointWorker reads and sets it around each pass).
    /// <summary>Waits in the worker's queue.</summary>
    internal bool Queued;
    /// <summary>Its pass is under way on the worker's thread.</summary>
    internal bool Running;
    /// <summary>Disposed: no pass is queued or served any more.</summary>
    internal bool Stopping;
    /// <summary>Checkpoints asked for (<see cref="Request"/>).</summary>
    internal long Requested;
    /// <summary>The last request that a pass begun after it has served.</summary>
    internal long Done;

    /// <summary>A checkpointer of <paramref name="filePath"/> whose passes run on <paramref name="worker"/>, shared with other
    /// files (a store of a file per shard), or, when null, on a worker of its own.</summary>
    public WalCheckpointer(string filePath, CheckpointWorker? worker = null)
    {
        _filePath = filePath;
        _ownsWorker = worker is null;
        _worker = worker ?? new CheckpointWorker();
    }

    /// <summary>Background passes run so far (tests).</summary>
    public long Passes => Interlocked.Read(ref _passes);

    /// <summary>Waits until at least one pass has run, up to <paramref name="bound"/> (tests): true when one has.</summary>
    internal bool WaitForPass(TimeSpan bound)
    {
        lock (_worker.Gate) return WaitWithin(() => Passes > 0, bound);
    }

    /// <summary>The writer committed <paramref name="rows"/> changed rows; wakes the thread once enough have piled up.</summary>
    public void NoteWritten(long rows)
    {
        _pending += rows;
        if (_pending < PassRows) return;
        _pending = 0;
        Nudge();
    }

    /// <summary>Asks for a pass now (the writer committed a batch of pages: a snapshot's chunks, KvStore.PauseAutoCheckpoint).</summary>
    public void Nudge()
    {
        lock (_worker.Gate) _worker.Schedule(this);
    }

    /// <summary>
    /// Asks for a pass that begins after this call; <see cref="IsDone"/> tells when one has ended. A pass fsyncs the WAL before
    /// it copies it, so once it is done the frames committed before the request are on disk, and a durable commit after it
    /// (synchronous=FULL) fsyncs only what came since, instead of a whole snapshot's pages on the loop thread.
    /// </summary>
    public long Request()
    {
        lock (_worker.Gate)
        {
            long ticket = ++Requested;
            _worker.Schedule(this);
            return ticket;
        }
    }

    /// <summary>Whether a pass begun after <see cref="Request"/> returned <paramref name="ticket"/> has ended (failed ones
    /// included: the durable commit then syncs by itself); waits for it up to <paramref name="wait"/>. Other files' passes
    /// wake the waiters of a shared worker too: the wait goes on until this one's or the bound.</summary>
    public bool IsDone(long ticket, TimeSpan wait)
    {
        lock (_worker.Gate) return WaitWithin(() => Done >= ticket, wait);
    }

    /// <summary>
    /// Waits on the worker's gate (held by the caller) until <paramref name="done"/> or <paramref name="bound"/> has passed,
    /// on the monotonic clock; returns <paramref name="done"/>'s last answer. The time left is read once per wait and the
    /// wait skipped unless it is positive: reading the clock twice (once to test, once to wait) let a thread preempted
    /// between the two pass a negative timeout to Monitor.Wait, which threw on the node's loop and stopped the node
    /// (ring bench, 2026-12-03), or, at -1 ms, waited without end.
    /// </summary>
    private bool WaitWithin(Func<bool> done, TimeSpan bound)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(Math.Min(bound.TotalSeconds, 86_400) * Stopwatch.Frequency); // at most a day
        while (!done())
        {
            var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (left <= TimeSpan.Zero) return false;
            Monitor.Wait(_worker.Gate, left);
        }
        return true;
    }

    /// <summary>One PASSIVE checkpoint, on the worker's thread (CheckpointWorker, outside its lock).</summary>
    internal void RunPass()
    {
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

    /// <summary>Stops serving this file: waits for its pass under way, if any, then closes its connection (and stops the worker
    /// when it is this file's own). A pass still queued is dropped.</summary>
    public void Dispose() => Stop(interrupt: false);

    /// <summary>As <see cref="Dispose"/>, for a file about to be deleted (ShardDb.Discard): a pass under way is interrupted
    /// (sqlite3_interrupt, which a checkpoint heeds between pages) instead of waited for, since its pages go nowhere.</summary>
    internal void Abandon() => Stop(interrupt: true);

    private void Stop(bool interrupt)
    {
        lock (_worker.Gate)
        {
            if (Stopping) return;
            Stopping = true;
            Done = long.MaxValue; // nothing more is served: no one waits for it
            Monitor.PulseAll(_worker.Gate);
            // Under the gate a running pass's connection stays open (the worker clears Running under it once the pass ended).
            // The handle is a SafeHandle: a pass that fails and closes it meanwhile makes this throw, not touch freed memory.
            if (interrupt && Running && _conn?.Handle is { } handle)
            {
                try { SQLitePCL.raw.sqlite3_interrupt(handle); }
                catch (ObjectDisposedException) { }
            }
            while (Running) Monitor.Wait(_worker.Gate);
        }
        if (_ownsWorker) _worker.Dispose();
        _conn?.Dispose();
    }
}
