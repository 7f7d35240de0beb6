using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Reads keys: one or more by name (-Key; a missing key is a non-terminating KeyNotFound error),
/// every key starting with -Prefix in ordinal UTF-8 key order (streamed as the engine returns them),
/// or, with neither, every key of the cluster in key order.
/// </summary>
[Cmdlet(VerbsCommon.Get, "ReplicationKey", DefaultParameterSetName = AllSet)]
[OutputType(typeof(ReplicationKey))]
public sealed class GetReplicationKeyCommand : ClusterCmdlet
{
    public const string KeySet = "Key";
    public const string PrefixSet = "Prefix";
    public const string AllSet = "All";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = KeySet)]
    [AllowEmptyString]
    public string[] Key { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = PrefixSet)]
    public string Prefix { get; set; } = string.Empty;

    /// <summary>Default Linearizable (reflects every write acknowledged before the read).</summary>
    [Parameter]
    public ReadConsistency Consistency { get; set; } = ReadConsistency.Linearizable;

    /// <summary>How long a read may wait for a leader. Default 10 s; then QuorumUnavailable.</summary>
    [Parameter]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    protected override void BeginProcessing() => ValidateTimeout(Timeout);

    protected override void ProcessRecord()
    {
        var cluster = ResolveCluster();
        if (ParameterSetName == KeySet)
        {
            foreach (var key in Key)
            {
                try
                {
                    var record = Await(cluster.Engine.GetAsync(key ?? string.Empty, Consistency, Timeout, StopToken));
                    if (record is null)
                        WriteError(NewErrorRecord(ErrorIds.KeyNotFound, ErrorCategory.ObjectNotFound,
                            $"Key '{key}' does not exist in cluster '{cluster.Name}'.", key));
                    else
                        WriteObject(record);
                }
                catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
                catch (ReplicationException e) { WriteEngineError(e, key); }
            }
            return;
        }

        var prefix = ParameterSetName == PrefixSet ? Prefix : string.Empty;
        IAsyncEnumerator<ReplicationKey>? scan = null;
        try
        {
            scan = cluster.Engine.ScanAsync(prefix, Consistency, Timeout, StopToken).GetAsyncEnumerator(StopToken);
            while (Await(scan.MoveNextAsync())) WriteObject(scan.Current);
        }
        catch (ReplicationException e)
        {
            ThrowEngineError(e, prefix);
        }
        finally
        {
            if (scan is not null)
            {
                try { scan.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
                catch (OperationCanceledException) { /* stopping: nothing left to release */ }
            }
        }
    }
}
