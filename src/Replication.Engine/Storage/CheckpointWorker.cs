namespace Replication.Engine.Storage;

/// <summary>
/// The thread that runs the background WAL checkpoint passes (<see cref="WalCheckpointer"/>) of one or more SQLite files in
/// turn. A store of one file per node has one file and one worker; a store of a file per shard (<see cref="KvStore"/>) shares
/// one worker among all its files, so a node that hosts hundreds of shards has one checkpointing thread, not hundreds (each
/// an idle 8 MB stack, and passes that would all hit the disk at once instead of one after the other, which is what the
/// pass size is chosen for: <see cref="WalCheckpointer.PassRows"/>).
/// <para>
/// Order: files wait for their pass in a FIFO queue, each at most once; a file asked for again while its pass runs is queued
/// again behind the others, so one busy shard cannot starve the rest. The thread starts at the first pass (a store that never
/// writes has none) and sleeps on <see cref="Gate"/> between passes.
/// </para>
/// Threads: <see cref="Gate"/> guards this queue and the pass state of every checkpointer served (one lock: a pass's start and
/// end, and their waiters, are ordered without a second one). <see cref="Dispose"/> once, after every checkpointer served was
/// disposed.
/// </summary>
internal sealed class CheckpointWorker : IDisposable
{
    /// <summary>Guards the queue and the pass state of the checkpointers served (class summary).</summary>
    internal readonly object Gate = new();
    private readonly Queue<WalCheckpointer> _queue = new();
    private Thread? _thread;
    private bool _stopping;

    /// <summary>Threads started (tests): 0 before the first pass, then 1.</summary>
    internal int ThreadsStarted { get; private set; }

    /// <summary>Under <see cref="Gate"/>: queues <paramref name="checkpointer"/> for a pass, unless it already waits for one, and
    /// wakes the thread (starting it at the first pass).</summary>
    internal void Schedule(WalCheckpointer checkpointer)
    {
        if (_stopping || checkpointer.Queued) return;
        checkpointer.Queued = true;
        _queue.Enqueue(checkpointer);
        if (_thread is null)
        {
            _thread = new Thread(Run) { IsBackground = true, Name = "replication-ckpt" };
            _thread.Start();
            ThreadsStarted++;
        }
        else Monitor.PulseAll(Gate);
    }

    private void Run()
    {
        while (true)
        {
            WalCheckpointer next;
            long serves;
            lock (Gate)
            {
                while (_queue.Count == 0 && !_stopping) Monitor.Wait(Gate);
                if (_stopping) return;
                next = _queue.Dequeue();
                next.Queued = false;
                if (next.Stopping) continue; // disposed while it waited: nothing to serve
                next.Running = true;
                serves = next.Requested;
            }
            next.RunPass(); // outside the lock: the writers keep asking (and other files queue) meanwhile
            lock (Gate)
            {
                next.Running = false;
                if (serves > next.Done) next.Done = serves;
                Monitor.PulseAll(Gate);
            }
        }
    }

    /// <summary>Stops the thread (after the pass under way, if any).</summary>
    public void Dispose()
    {
        Thread? thread;
        lock (Gate)
        {
            if (_stopping) return;
            _stopping = true;
            thread = _thread;
            Monitor.PulseAll(Gate);
        }
        thread?.Join();
    }
}
