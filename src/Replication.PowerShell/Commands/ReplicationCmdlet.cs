using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Base of every Replication cmdlet. Owns the <see cref="CancellationTokenSource"/> that Ctrl+C
/// (StopProcessing) cancels, so a stop reaches the engine; blocks on engine tasks on the pipeline
/// thread; turns <see cref="ReplicationException"/> into ErrorRecords with the engine's stable ErrorId.
/// </summary>
public abstract class ReplicationCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>Cancelled when the pipeline stops (Ctrl+C, Select-Object -First, ...).</summary>
    protected CancellationToken StopToken => _stopping.Token;

    protected override void StopProcessing() => _stopping.Cancel();

    public void Dispose()
    {
        _stopping.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Waits for an engine task. A cancellation caused by StopProcessing becomes
    /// PipelineStoppedException, which is how PowerShell expects a stopped cmdlet to leave.</summary>
    protected T Await<T>(Task<T> task)
    {
        try { return task.GetAwaiter().GetResult(); }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested) { throw new PipelineStoppedException(); }
    }

    protected void Await(Task task)
    {
        try { task.GetAwaiter().GetResult(); }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested) { throw new PipelineStoppedException(); }
    }

    protected T Await<T>(ValueTask<T> task)
    {
        try { return task.IsCompletedSuccessfully ? task.Result : task.AsTask().GetAwaiter().GetResult(); }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested) { throw new PipelineStoppedException(); }
    }

    /// <summary>
    /// Maps an engine error kind to an ErrorCategory. Conflict maps to WriteError, not ResourceExists:
    /// a version conflict is usually "the key changed under you", not "it already exists".
    /// </summary>
    internal static ErrorCategory CategoryOf(ReplicationErrorKind kind) => kind switch
    {
        ReplicationErrorKind.InvalidArgument => ErrorCategory.InvalidArgument,
        ReplicationErrorKind.NotFound => ErrorCategory.ObjectNotFound,
        ReplicationErrorKind.InvalidState => ErrorCategory.InvalidOperation,
        ReplicationErrorKind.Timeout => ErrorCategory.OperationTimeout,
        ReplicationErrorKind.Conflict => ErrorCategory.WriteError,
        ReplicationErrorKind.Unavailable => ErrorCategory.ResourceUnavailable,
        ReplicationErrorKind.Corrupt => ErrorCategory.InvalidData,
        ReplicationErrorKind.Unauthorized => ErrorCategory.AuthenticationError,
        _ => ErrorCategory.NotSpecified,
    };

    /// <summary>An ErrorRecord for an engine error: ErrorId = the engine's, target = the cmdlet's input
    /// (falling back to the engine's own target); for the errors a runbook must decide about, what to do next
    /// (ErrorDetails.RecommendedAction, which Get-Error shows; the message is unchanged).</summary>
    protected static ErrorRecord ToErrorRecord(ReplicationException exception, object? target)
    {
        var record = new ErrorRecord(exception, exception.ErrorId, CategoryOf(exception.Kind), target ?? exception.Target);
        if (RecommendedAction(exception.ErrorId) is { } action)
            record.ErrorDetails = new ErrorDetails(exception.Message) { RecommendedAction = action };
        return record;
    }

    /// <summary>What to do after the errors whose next step is not obvious from the message.</summary>
    internal static string? RecommendedAction(string errorId) => errorId switch
    {
        RemoteOperationException.OutcomeUnknown =>
            "Read the key (Get-ReplicationKey) to see whether the write was applied before writing it again; a conditional write (-ExpectedVersion) is safe to send again.",
        "QuorumUnavailable" =>
            "Test-ReplicationCluster shows the shards without a quorum and Get-ReplicationNode the nodes down: start them again (Start-ReplicationNode) to restore a majority of each shard's voters. A write that failed this way may or may not have been applied: read the key before writing it again.",
        ReplicaTooStaleException.Id =>
            "Retry later, allow more lag (-MaxLag), or read from the leader (-Consistency Linearizable or Lease).",
        "VersionConflict" =>
            "Read the key's current Version (Get-ReplicationKey) and decide again; write with that Version as -ExpectedVersion.",
        _ => null,
    };

    /// <summary>An ErrorRecord for a condition the PowerShell layer detects itself.</summary>
    protected static ErrorRecord NewErrorRecord(string errorId, ErrorCategory category, string message, object? target) =>
        new(new InvalidOperationException(message), errorId, category, target);

    /// <summary>Non-terminating: report and go on with the next input.</summary>
    protected void WriteEngineError(ReplicationException exception, object? target) => WriteError(ToErrorRecord(exception, target));

    /// <summary>Terminating: nothing in this pipeline can proceed.</summary>
    protected void ThrowEngineError(ReplicationException exception, object? target) => ThrowTerminatingError(ToErrorRecord(exception, target));

    /// <summary>The cmdlet's -Timeout as a TimeSpan, once <see cref="ValidateTimeout"/> accepted it.</summary>
    protected TimeSpan TimeoutSpan { get; private set; }

    /// <summary>Checks a -Timeout in seconds (terminating InvalidTimeout unless positive and finite, at most a
    /// year) and keeps it as <see cref="TimeoutSpan"/>. Seconds, as PowerShell's own -Timeout/-TimeoutSec;
    /// <see cref="TimeoutSecondsAttribute"/> turns a TimeSpan argument into seconds before this runs.</summary>
    protected void ValidateTimeout(double seconds)
    {
        if (!(seconds > 0) || seconds > MaxTimeoutSeconds)
            ThrowTerminatingError(NewErrorRecord(ErrorIds.InvalidTimeout, ErrorCategory.InvalidArgument,
                $"-Timeout is in seconds and must be positive (at most {MaxTimeoutSeconds:0}); got {seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}.", seconds));
        TimeoutSpan = TimeSpan.FromSeconds(seconds);
    }

    /// <summary>The longest -Timeout: a year (TimeSpan and the engine's deadlines stay far from overflow).</summary>
    protected const double MaxTimeoutSeconds = 365 * 86_400;

    /// <summary>Resolves a -Cluster argument: a ReplicationCluster, a name, an object with a Cluster
    /// property, or null for the current cluster. Terminating NoCluster / ClusterNotFound / InvalidClusterArgument.</summary>
    protected ReplicationCluster ResolveCluster(object? argument)
    {
        switch (argument is PSObject pso ? pso.BaseObject : argument)
        {
            case null:
                return ClusterRegistry.Current ?? throw Terminate(NewErrorRecord(ErrorIds.NoCluster, ErrorCategory.ObjectNotFound,
                    "No cluster is known in this session. Create one with New-ReplicationCluster, or pass -Cluster.", null));
            case ReplicationCluster cluster:
                return cluster;
            case string name when name.Length == 0:
                goto case null;
            case string name:
                return ClusterRegistry.Find(name) ?? throw Terminate(NewErrorRecord(ErrorIds.ClusterNotFound, ErrorCategory.ObjectNotFound,
                    $"No cluster named '{name}' is known in this session (Get-ReplicationCluster lists them).", name));
            case ReplicationNode node:
                return ResolveCluster(node.Cluster);
            case ReplicationShard shard:
                return ResolveCluster(shard.Cluster);
            case ReplicationKey key:
                return ResolveCluster(key.Cluster);
            case var other when other is not null && argument is PSObject wrapped && wrapped.Properties["Cluster"] is { } property:
                return ResolveCluster(property.Value);
            case var other:
                throw Terminate(NewErrorRecord(ErrorIds.InvalidClusterArgument, ErrorCategory.InvalidArgument,
                    $"-Cluster must be a ReplicationCluster or a cluster name, not {other?.GetType().FullName}.", other));
        }
    }

    /// <summary>Where an embedded cluster keeps its data when no path is given: &lt;temp&gt;/Replication/&lt;name&gt;.</summary>
    protected string ClusterFolder(string name, string? path) => path is null
        ? System.IO.Path.Combine(System.IO.Path.GetTempPath(), "Replication", name)
        : SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);

    /// <summary>
    /// Reserves <paramref name="name"/> in the session (terminating ClusterNameInUse if taken), starts a
    /// cluster with <paramref name="start"/> and registers it as the current one. On any failure the
    /// name is released; an engine error becomes a terminating error whose target is
    /// <paramref name="errorTarget"/>'s answer.
    /// </summary>
    protected ReplicationCluster StartAndRegister(string name, Func<IReplicationCluster> start, Func<ReplicationException, object?> errorTarget)
    {
        if (!ClusterRegistry.TryReserve(name))
            ThrowTerminatingError(NewErrorRecord(ErrorIds.ClusterNameInUse, ErrorCategory.ResourceExists,
                $"A cluster named '{name}' already exists in this session. Remove it, or choose another -Name.", name));
        try
        {
            var cluster = new ReplicationCluster(start());
            ClusterRegistry.Register(cluster);
            return cluster;
        }
        catch (ReplicationException e)
        {
            ClusterRegistry.ReleaseReservation(name);
            ThrowEngineError(e, errorTarget(e));
            throw; // unreachable: ThrowEngineError throws
        }
        catch
        {
            ClusterRegistry.ReleaseReservation(name);
            throw;
        }
    }

    private Exception Terminate(ErrorRecord record)
    {
        ThrowTerminatingError(record);
        return new InvalidOperationException("unreachable");
    }
}
