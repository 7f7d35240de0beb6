using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Base of the cmdlets that write keys. Pipeline input is batched: ProcessRecord queues one
/// <see cref="KeyWrite"/> per input, and every <see cref="BatchSize"/> inputs (and at the end, or when
/// the target cluster changes) the batch goes to the engine as ONE WriteAsync call, so
/// <c>Import-Csv big.csv | Set-ReplicationKey</c> runs at engine speed. Results are then written in
/// input order: a non-terminating error per failed item (its ErrorId from the engine), the written
/// keys with -PassThru. A cluster-wide failure (ClusterNotRunning) is terminating.
/// </summary>
public abstract class KeyWriteCmdlet : ClusterCmdlet
{
    /// <summary>Inputs per engine call.</summary>
    public const int BatchSize = 500;

    private readonly List<KeyWrite> _pending = new(BatchSize);
    private ReplicationCluster? _pendingCluster;

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
        var cluster = ResolveCluster();
        if (_pendingCluster is not null && !ReferenceEquals(_pendingCluster, cluster)) Flush();
        _pendingCluster = cluster;
        _pending.Add(write);
        if (_pending.Count >= BatchSize) Flush();
    }

    protected override void BeginProcessing() => ValidateTimeout(Timeout);

    protected override void EndProcessing() => Flush();

    /// <summary>Called for each successful write, in input order.</summary>
    protected abstract void OnWritten(WriteResult result);

    private void Flush()
    {
        if (_pending.Count == 0 || _pendingCluster is null) return;
        var cluster = _pendingCluster;
        var batch = _pending.ToArray();
        _pending.Clear();
        IReadOnlyList<WriteResult> results;
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
        foreach (var result in results)
        {
            if (result.Error is { } error) WriteEngineError(error, result.Write.Key);
            else OnWritten(result);
        }
    }
}
