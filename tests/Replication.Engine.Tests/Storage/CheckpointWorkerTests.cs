using Microsoft.Data.Sqlite;
using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Storage;

/// <summary>One checkpoint worker serving several files (CheckpointWorker.cs): each file's requested pass runs and copies its
/// WAL into its database file, on one thread; a file disposed while its pass is queued is dropped and the others are served.</summary>
public sealed class CheckpointWorkerTests : IDisposable
{
    private readonly TempFolder _dir = new();
    private readonly List<SqliteConnection> _writers = new();

    public void Dispose()
    {
        foreach (var w in _writers) w.Dispose();
        _dir.Dispose();
    }

    /// <summary>A WAL-mode file with <paramref name="rows"/> committed rows of 4 KB still in its WAL: its writer stays open and
    /// never checkpoints by itself.</summary>
    private string FileWithWal(string name, int rows)
    {
        string file = _dir.File(name);
        var w = TempFolder.Raw(file);
        _writers.Add(w);
        using var cmd = w.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(v BLOB);";
        cmd.ExecuteNonQuery();
        cmd.CommandText = "INSERT INTO t(v) VALUES(zeroblob(4096))";
        for (int i = 0; i < rows; i++) cmd.ExecuteNonQuery();
        return file;
    }

    [Fact]
    public void Files_sharing_a_worker_each_get_their_requested_pass_on_one_thread()
    {
        string[] files = [FileWithWal("a.db", 200), FileWithWal("b.db", 200), FileWithWal("c.db", 200)];
        Assert.All(files, f => Assert.True(new FileInfo(f).Length < 100 * 4096, $"{f} was checkpointed before the test asked"));
        using var worker = new CheckpointWorker();
        var checkpointers = files.Select(f => new WalCheckpointer(f, worker)).ToArray();
        try
        {
            Assert.Equal(0, worker.ThreadsStarted);
            long[] tickets = checkpointers.Select(c => c.Request()).ToArray();
            for (int i = 0; i < files.Length; i++)
            {
                Assert.True(checkpointers[i].IsDone(tickets[i], TimeSpan.FromSeconds(30)), $"{files[i]}'s pass did not end");
                Assert.True(checkpointers[i].Passes >= 1);
                Assert.True(new FileInfo(files[i]).Length >= 200 * 4096, $"{files[i]}'s WAL was not copied into it");
            }
            Assert.Equal(1, worker.ThreadsStarted);
        }
        finally
        {
            foreach (var c in checkpointers) c.Dispose();
        }
    }

    [Fact]
    public async Task A_wait_for_a_pass_never_asked_for_ends_with_its_bound_however_short_while_other_passes_wake_it()
    {
        // The loop waits on a pass with a 1 ms bound (NodeHost.ContinueInstall). Another file's passes wake every waiter of
        // the shared worker; each wait must end with false at its bound, never throw (a negative timeout reached
        // Monitor.Wait once and stopped a node) nor wait on.
        string a = FileWithWal("a.db", 20), b = FileWithWal("b.db", 20);
        using var worker = new CheckpointWorker();
        using var ca = new WalCheckpointer(a, worker);
        using var cb = new WalCheckpointer(b, worker);
        long never = ca.Request() + 1_000_000;
        using var stop = new CancellationTokenSource();
        var waker = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested) cb.IsDone(cb.Request(), TimeSpan.FromSeconds(5));
        });
        try
        {
            Assert.True(cb.WaitForPass(TimeSpan.FromSeconds(30)), "the other file's passes did not start");
            for (int i = 0; i < 3_000; i++)
                Assert.False(ca.IsDone(never, TimeSpan.FromTicks(i % 20_000)));
            var watch = System.Diagnostics.Stopwatch.StartNew();
            Assert.False(ca.IsDone(never, TimeSpan.FromMilliseconds(50)));
            Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(49), $"returned after {watch.Elapsed.TotalMilliseconds} ms, before its bound");
        }
        finally
        {
            stop.Cancel();
            await waker;
        }
    }

    [Fact]
    public void A_file_disposed_while_queued_is_dropped_and_the_others_are_still_served()
    {
        string a = FileWithWal("a.db", 50), b = FileWithWal("b.db", 50);
        using var worker = new CheckpointWorker();
        var ca = new WalCheckpointer(a, worker);
        var cb = new WalCheckpointer(b, worker);
        try
        {
            ca.Nudge();
            ca.Dispose(); // queued or running: Dispose returns once no pass of it runs, and none runs after
            long passesOfA = ca.Passes;
            long ticket = cb.Request();
            Assert.True(cb.IsDone(ticket, TimeSpan.FromSeconds(30)));
            Assert.Equal(passesOfA, ca.Passes);
            Assert.True(ca.IsDone(long.MaxValue - 1, TimeSpan.Zero)); // disposed: nothing is waited for
            long again = cb.Request();
            Assert.True(cb.IsDone(again, TimeSpan.FromSeconds(30)));
            Assert.True(cb.Passes >= 2);
        }
        finally
        {
            cb.Dispose();
        }
    }
}
