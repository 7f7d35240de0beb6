using System.Management.Automation;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Base of the cmdlets that act on one cluster. <c>-Cluster</c> takes a <see cref="ReplicationCluster"/>,
/// a cluster name, or any object whose <c>Cluster</c> property is one of those (the engine's node, shard
/// and key objects carry their cluster's name), so piping them routes to the right cluster. Without it,
/// the cluster most recently created or connected in this process is used.
/// <para>Which cluster, in order: <c>-Cluster</c> on the command line; a piped ReplicationCluster object
/// (<c>Get-ReplicationCluster prod | Get-ReplicationNode</c>); the Cluster property of a piped object of this
/// module (a live node, shard or key routes to its own cluster); the current cluster. A Cluster property of
/// any other piped object (a CSV row, a deserialized or JSON object) is accepted only when it names the
/// current cluster: otherwise the cmdlet stops with ClusterMismatch, because a column left over from an
/// export must not silently send writes back to the cluster they were exported from (issue 12, item 3).</para>
/// </summary>
public abstract class ClusterCmdlet : ReplicationCmdlet
{
    private PSObject? _pipelineInput;
    private HashSet<string>? _commandLineParameters;

    /// <summary>A ReplicationCluster object or a cluster name. Default: the current cluster.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ClusterNameCompleter))]
    public object? Cluster { get; set; }

    /// <summary>The piped object itself. Hidden: it lets the cmdlet take a piped ReplicationCluster, and tell an object
    /// of this module from a CSV row or a deserialized object (see the class remarks). Not meant to be given by name.</summary>
    [Parameter(ValueFromPipeline = true, DontShow = true)]
    public PSObject? PipelineInput
    {
        get => _pipelineInput;
        set
        {
            // The first piped object is bound after every command-line argument and before any other
            // pipeline value of its record: what is bound at this moment came from the command line.
            if (value is not null && _commandLineParameters is null)
                _commandLineParameters = new HashSet<string>(MyInvocation.BoundParameters.Keys, StringComparer.OrdinalIgnoreCase);
            _pipelineInput = value;
        }
    }

    /// <summary>True when <paramref name="parameter"/> was given on the command line (not bound from a piped object).</summary>
    protected bool IsFromCommandLine(string parameter) => _commandLineParameters is null
        ? MyInvocation.BoundParameters.ContainsKey(parameter)
        : _commandLineParameters.Contains(parameter);

    /// <summary>The piped object of the current record (unwrapped), or null when nothing is piped.</summary>
    protected object? PipedObject => _pipelineInput?.BaseObject;

    /// <summary>True for an object of this module's output family (namespace Replication): a live node, shard, key...
    /// False for a CSV row, a deserialized or JSON object, a string.</summary>
    protected static bool IsReplicationObject(object? value) => value is not null && value.GetType().Namespace == nameof(Replication);

    /// <summary>
    /// True when the current record's <paramref name="parameter"/> came from PowerShell turning a piped object
    /// that is not text into a string by value (a ReplicationCluster or node piped into -Key becomes its ToString).
    /// A string, or an object whose property of that name was bound, is fine.
    /// </summary>
    protected bool IsCoercedFromPipedObject(string parameter)
    {
        if (IsFromCommandLine(parameter) || _pipelineInput is null) return false;
        var piped = _pipelineInput.BaseObject;
        if (piped is string or char) return false;
        return _pipelineInput.Properties[parameter] is null;
    }

    /// <summary>Resolves the cluster for the current record (see the class remarks); a terminating error
    /// (NoCluster, ClusterNotFound, InvalidClusterArgument, ClusterMismatch) when it cannot.</summary>
    protected ReplicationCluster ResolveCluster()
    {
        if (IsFromCommandLine(nameof(Cluster))) return ResolveCluster(Cluster);
        var piped = PipedObject;
        if (piped is ReplicationCluster live) return live;
        if (Cluster is null || piped is null || IsReplicationObject(piped)) return ResolveCluster(Cluster);

        // A Cluster property of a row or a deserialized object: only the current cluster.
        var named = ResolveCluster(Cluster);
        if (ClusterRegistry.Current is { } current && !ReferenceEquals(named, current))
            ThrowTerminatingError(NewErrorRecord(ErrorIds.ClusterMismatch, ErrorCategory.InvalidArgument,
                $"The piped object names cluster '{named.Name}' in its Cluster property, but the current cluster is '{current.Name}'. " +
                $"Objects from a file or another process do not choose the cluster: pass -Cluster {named.Name} or -Cluster {current.Name} to say where, " +
                "or leave the Cluster column out.", Cluster));
        return named;
    }
}
