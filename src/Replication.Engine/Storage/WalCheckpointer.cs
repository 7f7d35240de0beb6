using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// PASSIVE checkpoints of a WAL database run on a thread of its own, on a connection of its own, for as long as it lives:
/// for the stretches where the writer (the node loop) writes many pages at once, a snapshot being stored
/// (<see cref="KvStore.PauseAutoCheckpoint"/>). Left to SQLite's auto-checkpoint, the committing writer copies the WAL
/// into the database and fsyncs it every 1,000 pages: storing a 33 MB snapshot (8 KiB pages), one checkpoint of about
/// 8 MB every 30 chunks, inside one of the install's transactions on the loop thread, the longest of its steps by far
/// (bench --only snapshot-parts, load 13-25: per-chunk transaction p99 37-307 ms with auto-checkpoint, 9-54 ms with this
/// thread), and every group of the node waited for it.
/// A PASSIVE checkpoint takes no lock the writer needs (SQLite: it copies what no reader still needs, and the writer
/// appends meanwhile); the writer restarts the WAL from its start once a checkpoint has copied all of it. Durability is
/// SQLite's either way: a checkpoint only copies committed frames. Thread-safe: <see cref="Nudge"/> from any thread.
/// </summary>
internal sealed class WalCheckpointer : IDisposable
{
    /// <summary>How often the thread checkpoints without a nudge (a nudge makes it check at once).</summary>
    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(50);

    private readonly SqliteConnection _conn;
    private readonly AutoResetEvent _nudge = new(false);
    private readonly Thread _thread;
    private readonly object _gate = new();
    private volatile bool _stopping;
    private long _requested; // checkpoints asked for (Request)
    private long _done; // the last request a checkpoint begun after it has served; written under _gate

    /// <summary>Opens the connection and starts the thread.</summary>
    public WalCheckpointer(string readerConnectionString, string name)
    {
        // A connection of its own, not from the readers' pool: it holds the checkpoint lock while it copies.
        _conn = new SqliteConnection(new SqliteConnectionStringBuilder(readerConnectionString) { Pooling = false }.ToString());
        _conn.Open();
        SqliteSetup.Execute(_conn, $"PRAGMA busy_timeout={SqliteSetup.BusyTimeoutMs};");
        _thread = new Thread(Run) { IsBackground = true, Name = $"replication-checkpoint-{name}" };
        _thread.Start();
    }

    /// <summary>Checkpoints run so far.</summary>
    public long Checkpoints { get; private set; }

    /// <summary>The last checkpoint's failure, if one failed (the thread goes on: the next one may succeed, and the writer's
    /// own checkpoints take over when this one is disposed).</summary>
    public Exception? Failure { get; private set; }

    /// <summary>Asks for a checkpoint now (the writer committed a batch of pages).</summary>
    public void Nudge() => _nudge.Set();

    /// <summary>
    /// Asks for a checkpoint that begins after this call; <see cref="IsDone"/> tells when one has ended. A checkpoint fsyncs
    /// the WAL before it copies it (its connection's synchronous is SQLite's default, FULL), so once it is done the frames
    /// committed before the request are on disk, and a durable commit after it (synchronous=FULL) fsyncs only what came
    /// since, instead of the whole batch's pages on the loop thread (tens of ms for a 33 MB snapshot).
    /// </summary>
    public long Request()
    {
        long ticket = Interlocked.Increment(ref _requested);
        _nudge.Set();
        return ticket;
    }

    /// <summary>Whether a checkpoint begun after <see cref="Request"/> returned <paramref name="ticket"/> has ended (failed
    /// ones included: the durable commit then syncs by itself); waits for it up to <paramref name="wait"/>.</summary>
    public bool IsDone(long ticket, TimeSpan wait)
    {
        if (Volatile.Read(ref _done) >= ticket) return true;
        if (wait <= TimeSpan.Zero) return false;
        lock (_gate)
        {
            if (_done < ticket) Monitor.Wait(_gate, wait);
            return _done >= ticket;
        }
    }

    private void Run()
    {
        try
        {
            while (!_stopping)
            {
                _nudge.WaitOne(Period);
                if (_stopping) break;
                long serves = Volatile.Read(ref _requested);
                try
                {
                    SqliteSetup.Execute(_conn, "PRAGMA wal_checkpoint(PASSIVE);");
                    Checkpoints++;
                }
                catch (SqliteException e)
                {
                    Failure = e;
                }
                lock (_gate)
                {
                    _done = serves;
                    Monitor.PulseAll(_gate);
                }
            }
        }
        finally
        {
            _conn.Dispose();
        }
    }

    /// <summary>Stops the thread without waiting for it: a checkpoint in progress completes on it, and it closes its
    /// connection then (the loop does not wait for the copying it handed off).</summary>
    public void Stop()
    {
        _stopping = true;
        _nudge.Set();
        lock (_gate)
        {
            _done = long.MaxValue; // nothing more is served: no one waits for it
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Stops the thread and waits for it to end (its connection closed).</summary>
    public void Dispose()
    {
        Stop();
        _thread.Join();
    }
}
