using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;
using Replication.Engine.Storage;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Base of the cmdlets that write keys. Pipeline input is batched: ProcessRecord queues one
/// <see cref="KeyWrite"/> per input, and every <see cref="BatchSize"/> inputs (and at the end, or when
/// the target cluster changes) the batch goes to the engine as ONE WriteAsync call, so
/// <c>Import-Csv big.csv | Set-ReplicationKey</c> runs at engine speed. Results are then written in
/// input order: a non-terminating error per failed item (its ErrorId from the engine), the written
/// keys with -PassThru. A cluster-wide failure (ClusterNotRunning) is terminating.
/// <para>With -ErrorAction Stop (or $ErrorActionPreference = 'Stop') the pipeline must stop AT the failing item:
/// everything before it written, nothing after it. So then an invalid item (the engine's own key and value checks,
/// run here first) sends what is queued before it and stops; a conditional write (-ExpectedVersion) goes alone,
/// after what is queued, since only applying it tells whether it conflicts. Unconditional valid writes still go in
/// batches: the one way one of them fails is a timeout (QuorumUnavailable), whose outcome is unknown anyway.</para>
/// </summary>
public abstract class KeyWriteCmdlet : ClusterCmdlet
{
    /// <summary>Inputs per engine call.</summary>
    public const int BatchSize = 500;

    // A queued input: a write, or an error found here (kept in the queue so errors come out in input order).
    private readonly record struct Pending(KeyWrite? Write, ErrorRecord? Error);

    private readonly List<Pending> _pending = new(BatchSize);
    private ReplicationCluster? _pendingCluster;
    private bool? _stopOnError;

    /// <summary>Seconds the engine may take to acknowledge each batch (a TimeSpan works too). Default 10; a
    /// write not acknowledged by then fails with QuorumUnavailable (its outcome is unknown).</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 10;

    /// <summary>When a write counts as done. Default Majority.</summary>
    [Parameter]
    public WriteConcern WriteConcern { get; set; } = WriteConcern.Majority;

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

    protected override void EndProcessing() => Flush();

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

    private void Flush()
    {
        if (_pending.Count == 0 || _pendingCluster is null) return;
        var cluster = _pendingCluster;
        var queued = _pending.ToArray();
        _pending.Clear();
        var batch = queued.Where(p => p.Write is not null).Select(p => p.Write!).ToArray();
        IReadOnlyList<WriteResult> results = Array.Empty<WriteResult>();
        if (batch.Length > 0)
        {
            try
            {
                WriteVerbose($"Writing {batch.Length} key(s) to cluster '{cluster.Name}'.");
                results = Await(cluster.Engine.WriteAsync(batch, WriteConcern, TimeoutSpan, StopToken));
            }
            catch (ReplicationException e)
            {
                ThrowEngineError(e, batch.Length == 1 ? batch[0].Key : cluster);
                return;
            }
        }
        int next = 0;
        foreach (var item in queued)
        {
            if (item.Error is { } error)
            {
                WriteError(error);
                continue;
            }
            var result = results[next++];
            if (result.Error is { } failure) WriteEngineError(failure, result.Write.Key);
            else OnWritten(result);
        }
    }
}
