using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;
using Replication.Engine.Storage;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Base of the cmdlets that write keys. Pipeline input is batched: ProcessRecord queues one
/// <see cref="KeyWrite"/> per input, and every <see cref="BatchSize"/> inputs (and at the end, or when
/// the target cluster changes) the batch goes to the engine as ONE WriteAsync call, so
/// <c>Import-Csv big.csv | Set-ReplicationKey</c> runs at engine speed. Up to -ThrottleLimit batches are in
/// flight at once while the pipeline reads on (the engine splits each by shard leader and packs each shard's part
/// into one log entry); a batch holding a key that an earlier batch still in flight also writes waits for that
/// batch first, so writes of one key are applied in input order. Results are written in input order, each batch's
/// as soon as it and every batch before it are answered: a non-terminating error per failed item (its ErrorId from
/// the engine), the written keys with -PassThru. A cluster-wide failure (ClusterNotRunning) is terminating.
/// <para>With -ErrorAction Stop (or $ErrorActionPreference = 'Stop') the pipeline must stop AT the failing item:
/// everything before it written, nothing after it. So then one batch at a time is in flight and it is answered before
/// the next input is read; an invalid item (the engine's own key and value checks, run here first) sends what is
/// queued before it and stops; a conditional write (-ExpectedVersion) goes alone, after what is queued, since only
/// applying it tells whether it conflicts. Unconditional valid writes still go in batches: the one way one of them
/// fails is a timeout (QuorumUnavailable), whose outcome is unknown anyway.</para>
/// <para>A stop (Ctrl+C, StopProcessing) sends nothing more but does not abandon the batches in flight: a cancelled
/// request would not unsend them (the leader may still commit them), only hide what became of them. It waits for their
/// answers (each batch ends by its -Timeout anyway) and prints, as a warning on the host, how many inputs were
/// reported, how many of the writes in flight were written, failed, or have an unknown outcome (timed out), and how many
/// queued inputs were never sent. Once the stop returns, nothing this cmdlet sent is still on its way.</para>
/// </summary>
public abstract class KeyWriteCmdlet : ClusterCmdlet
{
    /// <summary>Inputs per engine call.</summary>
    public const int BatchSize = 500;

    /// <summary>Batches in flight at once by default: two, so the pipeline reads the next batch while one is written.
    /// Measured in the deployed shape (bench/Measure-Import.ps1, the Bench's import; README "Benchmarks"): on the shared
    /// 2-core machine 1, 2, 4 and 8 gave the same keys/s within its noise (CPU, not latency, bound the import), while
    /// each batch waited longer the more were in flight (p50 381 ms with 1, 1,230 ms with 4), which exposes more writes to
    /// a leader change while they wait.</summary>
    public const int DefaultThrottleLimit = 2;

    // A queued input: a write, or an error found here (kept in the queue so errors come out in input order).
    private readonly record struct Pending(KeyWrite? Write, ErrorRecord? Error);

    // A batch sent to the engine (Task null: only errors found here), answered in the order sent.
    private sealed record Batch(Pending[] Queued, KeyWrite[] Writes, Task<IReadOnlyList<WriteResult>>? Task, ReplicationCluster Cluster);

    private readonly List<Pending> _pending = new(BatchSize);
    private ReplicationCluster? _pendingCluster;
    private bool? _stopOnError;

    // Guarded by _gate: the pipeline thread changes them, StopProcessing (another thread) reads them.
    private readonly object _gate = new();
    private readonly Queue<Batch> _inFlight = new();
    private readonly Dictionary<string, int> _keysInFlight = new(StringComparer.Ordinal);
    private long _reportedInputs;

    /// <summary>Seconds the engine may take to acknowledge each batch (a TimeSpan works too). Default 10; a
    /// write not acknowledged by then fails with QuorumUnavailable (its outcome is unknown).</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 10;

    /// <summary>When a write counts as done. Default Majority.</summary>
    [Parameter]
    public WriteConcern WriteConcern { get; set; } = WriteConcern.Majority;

    /// <summary>How many batches of 500 piped inputs may be in flight at once, while the pipeline reads on. Default 2;
    /// 1 sends the next batch only once the one before is answered. Results still come in input order, and writes of one
    /// key in input order. With -ErrorAction Stop one batch at a time goes, whatever this says.</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int ThrottleLimit { get; set; } = DefaultThrottleLimit;

    /// <summary>Queues one write; sends the batch when it is full or the cluster changes.</summary>
    protected void Enqueue(KeyWrite write)
    {
        UseClusterOfThisRecord();

        if (write.ExpectedVersion is not null && WriteConcern == WriteConcern.Leader)
        {
            Fail(NewErrorRecord(ErrorIds.InvalidWriteConcern, ErrorCategory.InvalidArgument,
                $"'{write.Key}': a conditional write (-ExpectedVersion) needs -WriteConcern Majority or All: with Leader it is acknowledged " +
                "before it is applied, so a version conflict would go unreported.", write.Key));
            return;
        }
        if (StopOnError)
        {
            try { KvLimits.Validate(write.Key, write.Value); }
            catch (InvalidKeyException e)
            {
                Flush();
                WriteEngineError(e, write.Key); // throws: -ErrorAction Stop
                return;
            }
            if (write.ExpectedVersion is not null)
            {
                Flush();
                _pending.Add(new Pending(write, null));
                Flush();
                return;
            }
        }
        _pending.Add(new Pending(write, null));
        if (_pending.Count >= BatchSize) Flush();
    }

    /// <summary>Reports a per-item error found in this layer, in input order with the engine's results
    /// (at once, after what is queued, under -ErrorAction Stop).</summary>
    protected void Fail(ErrorRecord error)
    {
        UseClusterOfThisRecord();
        if (StopOnError)
        {
            Flush();
            WriteError(error);
            lock (_gate) _reportedInputs++;
            return;
        }
        _pending.Add(new Pending(null, error));
        if (_pending.Count >= BatchSize) Flush();
    }

    /// <summary>Resolves this record's cluster; what is queued for another cluster is sent first.</summary>
    private void UseClusterOfThisRecord()
    {
        var cluster = ResolveCluster();
        if (_pendingCluster is not null && !ReferenceEquals(_pendingCluster, cluster)) Flush();
        _pendingCluster = cluster;
    }

    protected override void BeginProcessing() => ValidateTimeout(Timeout);

    protected override void EndProcessing()
    {
        Flush();
        lock (_gate) if (_inFlight.Count == 0) return;
        while (ReportOldest(wait: true)) { }
    }

    /// <summary>Called for each successful write, in input order.</summary>
    protected abstract void OnWritten(WriteResult result);

    /// <summary>True when an error must stop the pipeline: -ErrorAction, else $ErrorActionPreference, is Stop (or Inquire).</summary>
    private bool StopOnError => _stopOnError ??= ComputeStopOnError();

    private bool ComputeStopOnError()
    {
        object? preference = MyInvocation.BoundParameters.TryGetValue("ErrorAction", out var bound) ? bound : GetVariableValue("ErrorActionPreference");
        if (preference is PSObject wrapped) preference = wrapped.BaseObject;
        ActionPreference action = preference switch
        {
            ActionPreference a => a,
            string s when Enum.TryParse<ActionPreference>(s, ignoreCase: true, out var parsed) => parsed,
            _ => ActionPreference.Continue,
        };
        return action is ActionPreference.Stop or ActionPreference.Inquire;
    }

    /// <summary>
    /// Sends what is queued as one batch, then reports the batches already answered (in order) and waits for the
    /// oldest while more than -ThrottleLimit are in flight (under -ErrorAction Stop: until all are answered).
    /// </summary>
    private void Flush()
    {
        if (_pending.Count == 0 || _pendingCluster is null) return;
        var cluster = _pendingCluster;
        var queued = _pending.ToArray();
        _pending.Clear();
        var writes = queued.Where(p => p.Write is not null).Select(p => p.Write!).ToArray();
        // Writes of a key an earlier batch in flight also writes go after that batch is answered: in input order.
        foreach (var w in writes)
            while (KeyInFlight(w.Key) && ReportOldest(wait: true)) { }
        Task<IReadOnlyList<WriteResult>>? task = null;
        if (writes.Length > 0)
        {
            WriteVerbose($"Writing {writes.Length} key(s) to cluster '{cluster.Name}'.");
            // Not StopToken: a stop waits for what is in flight instead of abandoning it (class summary).
            task = cluster.Engine.WriteAsync(writes, WriteConcern, TimeoutSpan, CancellationToken.None);
        }
        lock (_gate)
        {
            _inFlight.Enqueue(new Batch(queued, writes, task, cluster));
            foreach (var w in writes) _keysInFlight[w.Key] = _keysInFlight.GetValueOrDefault(w.Key) + 1;
        }
        int limit = StopOnError ? 0 : ThrottleLimit;
        while (InFlightCount > limit && ReportOldest(wait: true)) { }
        while (ReportOldest(wait: false)) { }
    }

    private int InFlightCount
    {
        get { lock (_gate) return _inFlight.Count; }
    }

    private bool KeyInFlight(string key)
    {
        lock (_gate) return _keysInFlight.ContainsKey(key);
    }

    /// <summary>
    /// Reports the oldest batch in flight (its errors and written keys, in input order) once it is answered;
    /// <paramref name="wait"/> false reports it only if it is answered already. False when there was nothing to report.
    /// </summary>
    private bool ReportOldest(bool wait)
    {
        Batch batch;
        lock (_gate)
        {
            if (!_inFlight.TryPeek(out batch!)) return false;
            if (!wait && batch.Task is { IsCompleted: false }) return false;
        }
        IReadOnlyList<WriteResult> results = Array.Empty<WriteResult>();
        try
        {
            if (batch.Task is not null) results = Await(batch.Task);
        }
        catch (ReplicationException e)
        {
            Forget(batch);
            long after;
            lock (_gate) after = _inFlight.Sum(b => (long)b.Writes.Length);
            if (after > 0) WriteWarning($"{after} write(s) sent after the failed batch were still in flight; their outcome is not reported (read those keys back).");
            ThrowEngineError(e, batch.Writes.Length == 1 ? batch.Writes[0].Key : batch.Cluster);
            return false;
        }
        Forget(batch);
        int next = 0;
        foreach (var item in batch.Queued)
        {
            if (item.Error is { } error) WriteError(error);
            else
            {
                var result = results[next++];
                if (result.Error is { } failure) WriteEngineError(failure, result.Write.Key);
                else OnWritten(result);
            }
            lock (_gate) _reportedInputs++;
        }
        return true;
    }

    /// <summary>Takes an answered (or failed) batch out of the in-flight bookkeeping.</summary>
    private void Forget(Batch batch)
    {
        lock (_gate)
        {
            _inFlight.Dequeue();
            foreach (var w in batch.Writes)
            {
                int left = _keysInFlight[w.Key] - 1;
                if (left == 0) _keysInFlight.Remove(w.Key);
                else _keysInFlight[w.Key] = left;
            }
        }
    }

    /// <summary>
    /// Ctrl+C: nothing more is sent (the base class cancels the pipeline's waits); the batches in flight are waited for,
    /// each bounded by its own -Timeout, and the host is told what became of the inputs: reported (output and errors
    /// already written), written or failed but not reported (answered after the stop), outcome unknown (timed out), never
    /// sent (queued here). Inputs the pipeline had not yet passed to this cmdlet were never seen.
    /// </summary>
    protected override void StopProcessing()
    {
        base.StopProcessing();
        Batch[] inFlight;
        long reported;
        lock (_gate)
        {
            inFlight = _inFlight.ToArray();
            reported = _reportedInputs;
        }
        int notSent = _pending.Count; // read off the pipeline thread: a count for the message, not a decision
        var tasks = inFlight.Where(b => b.Task is not null).Select(b => (Task)b.Task!).ToArray();
        // Each write call ends by its own timeout; the margin covers the client's network allowance.
        try { Task.WaitAll(tasks, TimeoutSpan + TimeSpan.FromSeconds(5)); }
        catch (AggregateException) { } // a batch that failed as a whole is counted below
        long written = 0, failed = 0, unknown = 0;
        foreach (var b in inFlight)
        {
            if (b.Task is null) continue;
            if (!b.Task.IsCompletedSuccessfully)
            {
                if (b.Task.IsCompleted) failed += b.Writes.Length; // failed as a whole (e.g. ClusterNotRunning): nothing proposed
                else unknown += b.Writes.Length;
                continue;
            }
            foreach (var r in b.Task.Result)
            {
                if (r.Error is null) written++;
                else if (r.Error is RemoteOperationException { ErrorId: RemoteOperationException.OutcomeUnknown } or QuorumUnavailableException) unknown++;
                else failed++;
            }
        }
        if (inFlight.Length == 0 && notSent == 0) return;
        try
        {
            Host.UI.WriteWarningLine(
                $"{MyInvocation.MyCommand.Name} stopped: {reported} input(s) reported before the stop; of the {written + failed + unknown} write(s) " +
                $"then in flight, {written} written, {failed} failed, {unknown} with an unknown outcome (read those keys back); {notSent} queued input(s) not sent.");
        }
        catch (Exception e) when (e is NotImplementedException or PSInvalidOperationException or NullReferenceException) { } // a host without a UI
    }
}
