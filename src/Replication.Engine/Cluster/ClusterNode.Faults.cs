using System.Security.Cryptography;
using System.Text;

namespace Replication.Engine.Cluster;

/// <summary>
/// Fault injection from outside the process, for a fault drill on node processes it started itself
/// (Verification/ProcessDrillTarget.cs): a partition at this node's transport, a slow disk, and the drill's mutant, set
/// through the administrative operation <see cref="AdminOps.FaultSet"/>. Off unless the process was started with the
/// environment variable <see cref="FaultInjectionVariable"/> (the drill puts a random token there, never on a command
/// line), and then only for a request that carries the same token: the cluster secret alone does not let anyone
/// partition or slow a production node. A kill is SIGKILL and a pause SIGSTOP; they need no hook.
/// </summary>
public sealed partial class ClusterNode
{
    /// <summary>The environment variable that enables fault injection in a node process, holding the token requests must carry.</summary>
    public const string FaultInjectionVariable = "REPLICATION_FAULT_INJECTION";

    private Empty SetFaults(FaultArgs args)
    {
        string? token = Environment.GetEnvironmentVariable(FaultInjectionVariable);
        if (string.IsNullOrEmpty(token) || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(token), Encoding.UTF8.GetBytes(args.Token ?? "")))
            throw new RemoteOperationException("FaultInjectionDisabled", ReplicationErrorKind.InvalidState,
                $"Node {NodeId} does not accept injected faults: only node processes a fault drill started do.");
        _host.CutOff(args.CutOff ?? Array.Empty<int>());
        _host.SaveDelay = TimeSpan.FromMilliseconds(Math.Clamp(args.SaveDelayMs, 0, 10_000));
        _host.MutantLocalReads = args.MutantLocalReads;
        Log($"fault injection: cut off from [{string.Join(',', args.CutOff ?? Array.Empty<int>())}], {args.SaveDelayMs} ms per log save{(args.MutantLocalReads ? ", MUTANT local reads" : "")}");
        return new Empty();
    }
}
