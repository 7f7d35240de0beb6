using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Reads keys from a cluster: by name, by prefix, or all of them. With -Key, one or more keys by name
/// (a missing key is a non-terminating KeyNotFound error); with -Prefix, every key starting with it
/// in ordinal UTF-8 key order (streamed as the engine returns them); with neither, every key of the
/// cluster in key order.
/// </summary>
/// <example>
/// <code>Get-ReplicationKey -Key user:1</code>
/// Reads one key: its value, version, shard and index.
/// </example>
/// <example>
/// <code>Get-ReplicationKey -Prefix user:</code>
/// Reads every key that starts with user:, in key order.
/// </example>
/// <example>
/// <code>Get-ReplicationKey -Consistency Stale | Export-Csv keys.csv</code>
/// Exports every key of the cluster with stale reads (a replica's applied state, which may lag), without a leader round trip.
/// </example>
/// <example>
/// <code>Get-ReplicationKey -Key user:1 -Consistency Stale -MaxLag 100 | Select-Object Key, Value, ReadFrom, LagEntries</code>
/// Reads a key from the replica of the node the session is connected to, which says who it is (ReadFrom) and how many
/// entries it had not applied yet (LagEntries); a replica more than 100 entries behind refuses with ReplicaTooStale.
/// </example>
[Cmdlet(VerbsCommon.Get, "ReplicationKey", DefaultParameterSetName = AllSet)]
[OutputType(typeof(ReplicationKey))]
public sealed class GetReplicationKeyCommand : ClusterCmdlet
{
    public const string KeySet = "Key";
    public const string PrefixSet = "Prefix";
    public const string AllSet = "All";

    /// <summary>Keys to read, literally (no wildcards: -Prefix reads every key that starts with a text); each missing key
    /// is a non-terminating KeyNotFound error. Takes strings or objects with a Key property from the pipeline.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = KeySet)]
    [AllowEmptyString]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string[] Key { get; set; } = Array.Empty<string>();

    /// <summary>Read every key that starts with this text, in ordinal UTF-8 key order.</summary>
    [Parameter(Mandatory = true, ParameterSetName = PrefixSet)]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string Prefix { get; set; } = string.Empty;

    /// <summary>How fresh the read must be: Linearizable (default; reflects every write acknowledged
    /// before the read), Lease (served by a leader holding a valid lease, without a quorum round trip)
    /// or Stale (any replica's applied state; may lag).</summary>
    [Parameter]
    public ReadConsistency Consistency { get; set; } = ReadConsistency.Linearizable;

    /// <summary>With -Key and -Consistency Stale: the most entries the serving replica may lag behind its shard's
    /// leader. A replica further behind refuses with ReplicaTooStale (the read is not sent on to the leader: retry, or
    /// read with -Consistency Linearizable). Linearizable and Lease reads never lag, so it does not limit them.</summary>
    [Parameter(ParameterSetName = KeySet)]
    [ValidateRange(0, long.MaxValue)]
    public long MaxLag { get; set; } = -1;

    /// <summary>Seconds a read may wait for a leader (a TimeSpan works too). Default 10; then QuorumUnavailable.</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 10;

    protected override void BeginProcessing() => ValidateTimeout(Timeout);

    protected override void ProcessRecord()
    {
        var cluster = ResolveCluster();
        bool all = false;
        if (ParameterSetName == KeySet && IsCoercedFromPipedObject(nameof(Key)))
        {
            // PowerShell bound a piped object's ToString to -Key: a piped cluster means "its keys"; anything else is refused.
            if (PipedObject is not ReplicationCluster)
            {
                WriteError(NewErrorRecord(ErrorIds.InvalidPipelineInput, ErrorCategory.InvalidArgument,
                    $"A piped {PipedObject!.GetType().Name} is not a key: pipe key names (strings), objects with a Key property, or a cluster.", PipedObject));
                return;
            }
            all = true;
        }
        if (ParameterSetName == KeySet && !all)
        {
            foreach (var key in Key)
            {
                try
                {
                    var record = Await(cluster.Engine.GetAsync(key ?? string.Empty, Consistency, TimeoutSpan, StopToken, MaxLag < 0 ? null : MaxLag));
                    if (record is null)
                        WriteError(NewErrorRecord(ErrorIds.KeyNotFound, ErrorCategory.ObjectNotFound,
                            $"Key '{key}' does not exist in cluster '{cluster.Name}'." + WildcardHint(key), key));
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
            scan = cluster.Engine.ScanAsync(prefix, Consistency, TimeoutSpan, StopToken).GetAsyncEnumerator(StopToken);
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

    /// <summary>
    /// -Key is literal (a key may hold '*', '?' or '['), but PowerShell's Get- cmdlets take wildcards: a missing key that
    /// ends in '*' after plain text says how to read the keys that start with that text.
    /// </summary>
    private static string WildcardHint(string? key) =>
        key is { Length: > 1 } k && k[^1] == '*' && k.IndexOfAny(['*', '?', '[']) == k.Length - 1
            ? $" -Key is not a wildcard: for every key that starts with '{k[..^1]}', use -Prefix '{k[..^1]}'."
            : "";
}
