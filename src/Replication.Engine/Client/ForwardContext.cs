namespace Replication.Engine.Client;

/// <summary>
/// Marks the request being served as forwarded by another node (flows with the async call, like a
/// logical call context), so a routing handler serves it locally or refuses it instead of forwarding
/// it again: the bound on hops.
/// </summary>
public static class ForwardContext
{
    private static readonly AsyncLocal<bool> Forwarded = new();

    /// <summary>True while serving a request another node forwarded.</summary>
    public static bool IsForwarded => Forwarded.Value;

    internal static async Task<T> RunForwardedAsync<T>(Func<Task<T>> serve)
    {
        Forwarded.Value = true; // restored when this async method returns (the context is copied on entry)
        return await serve().ConfigureAwait(false);
    }

    /// <summary>
    /// Runs a coordinator's work (a split, which routes its own steps to other groups' leaders) as a request of its own:
    /// each of its steps is one hop again. Without this, a coordination reached by forwarding refused every step whose
    /// group this node did not lead ("never a second hop") and retried until it timed out.
    /// </summary>
    internal static async Task<T> RunAsOriginAsync<T>(Func<Task<T>> work)
    {
        Forwarded.Value = false; // restored when this async method returns
        return await work().ConfigureAwait(false);
    }
}
