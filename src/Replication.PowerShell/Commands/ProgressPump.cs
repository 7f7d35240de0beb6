using System.Collections.Concurrent;
using System.Management.Automation;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Carries an engine's progress reports (raised on engine threads) to the pipeline thread, where
/// only WriteProgress may be called: the engine reports into a queue, and <see cref="WaitPumping"/>
/// blocks on the engine task while writing queued reports as ProgressRecords. Thread-safe on the
/// reporting side; <see cref="WaitPumping"/> runs on the pipeline thread only.
/// </summary>
internal sealed class ProgressPump(int activityId) : IProgress<BackupProgress>
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    private readonly ConcurrentQueue<BackupProgress> _reports = new();
    private string _activity = "Replication";

    public void Report(BackupProgress value) => _reports.Enqueue(value);

    /// <summary>Writes queued reports until <paramref name="task"/> completes, then a Completed record.
    /// Bounded by the task itself (the engine bounds its operations with timeouts). With <paramref name="complete"/> false,
    /// no Completed record at the end: the caller pumps again for the same activity.</summary>
    public void WaitPumping(Task task, Cmdlet cmdlet, bool complete = true)
    {
        var handle = ((IAsyncResult)task).AsyncWaitHandle;
        while (!task.IsCompleted)
        {
            handle.WaitOne(PollInterval);
            Drain(cmdlet);
        }
        Drain(cmdlet);
        if (complete) cmdlet.WriteProgress(new ProgressRecord(activityId, _activity, "done") { RecordType = ProgressRecordType.Completed });
    }

    private void Drain(Cmdlet cmdlet)
    {
        while (_reports.TryDequeue(out var p))
        {
            _activity = p.Activity;
            cmdlet.WriteProgress(new ProgressRecord(activityId, p.Activity, p.Status) { PercentComplete = p.PercentComplete });
        }
    }
}
