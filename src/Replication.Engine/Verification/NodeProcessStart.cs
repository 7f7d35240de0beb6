namespace Replication.Engine.Verification;

/// <summary>
/// What a fault drill needs started as one node process (<see cref="FaultDrill.RunOnNodeProcessesAsync"/>): the node's
/// data folder, the loopback endpoint it listens on, and the endpoint it joins through (null: it founds the cluster,
/// or restarts from its folder). The cluster secret is NOT here: the drill puts it in the started process's
/// environment as <see cref="SecretVariable"/>, so it never appears on a command line.
/// </summary>
public sealed record NodeProcessStart(int Slot, string Path, string Listen, string? Join)
{
    /// <summary>The environment variable that carries the cluster secret to the node process.</summary>
    public const string SecretVariable = "REPLICATION_CLUSTER_SECRET";
}
