using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace Replication.PowerShell;

/// <summary>
/// Tab completion from the live cluster: the cluster named by the command's <c>-Cluster</c> (a name or a cluster
/// object already typed on the line), else the session's current cluster. Every lookup is bounded: at most
/// <see cref="Deadline"/> of waiting (a remote cluster is asked over the network) and <see cref="MaxResults"/>
/// results; on any error or timeout completion offers nothing rather than blocking the prompt.
/// To complete a parameter of a new cmdlet, add the attribute: [ArgumentCompleter(typeof(NodeIdCompleter))] on a
/// node id, ShardIdCompleter on a shard id, KeyCompleter on a key or prefix, ClusterNameCompleter on -Cluster.
/// Thread-safe: stateless.
/// </summary>
public abstract class LiveCompleter : IArgumentCompleter
{
    /// <summary>Longest wait for the cluster while completing.</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(2);
    /// <summary>Most completions offered at once.</summary>
    public const int MaxResults = 100;

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var cluster = ClusterOf(fakeBoundParameters);
        if (cluster is null || !cluster.Engine.IsRunning) return Array.Empty<CompletionResult>();
        string word = (wordToComplete ?? string.Empty).Trim('\'', '"');
        try
        {
            var task = Task.Run(() => Complete(cluster, word).Take(MaxResults).ToList());
            return task.Wait(Deadline) ? task.Result : Array.Empty<CompletionResult>();
        }
        catch (AggregateException)
        {
            return Array.Empty<CompletionResult>();
        }
    }

    /// <summary>The completions for <paramref name="word"/> (unquoted), in the order to offer them.</summary>
    protected abstract IEnumerable<CompletionResult> Complete(ReplicationCluster cluster, string word);

    /// <summary>Text as a completion: single-quoted when PowerShell would not read it as one bare word.</summary>
    protected static CompletionResult Result(string text, string toolTip)
    {
        bool bare = text.Length > 0 && text.All(c => char.IsLetterOrDigit(c) || c is ':' or '.' or '_' or '-' or '/' or '\\' or '+')
            && !text.StartsWith('-');
        return new CompletionResult(bare ? text : "'" + text.Replace("'", "''") + "'", text, CompletionResultType.ParameterValue, toolTip);
    }

    private static ReplicationCluster? ClusterOf(IDictionary bound)
    {
        var value = bound.Contains("Cluster") ? bound["Cluster"] : null;
        if (value is PSObject wrapped) value = wrapped.BaseObject;
        return value switch
        {
            ReplicationCluster c => c,
            string name when name.Length > 0 => ClusterRegistry.Find(name),
            _ => ClusterRegistry.Current,
        };
    }
}

/// <summary>Completes node ids of the cluster, with each node's state and endpoint as the tooltip.</summary>
public sealed class NodeIdCompleter : LiveCompleter
{
    protected override IEnumerable<CompletionResult> Complete(ReplicationCluster cluster, string word) =>
        cluster.Engine.GetNodes()
            .Where(n => n.Id.ToString(System.Globalization.CultureInfo.InvariantCulture).StartsWith(word, StringComparison.Ordinal))
            .OrderBy(n => n.Id)
            .Select(n => Result(n.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), $"node {n.Id}: {n.State}, {n.Endpoint}, leads {n.ShardsLed}"));
}

/// <summary>Completes shard ids of the cluster, with each shard's leader and voters as the tooltip.</summary>
public sealed class ShardIdCompleter : LiveCompleter
{
    protected override IEnumerable<CompletionResult> Complete(ReplicationCluster cluster, string word) =>
        cluster.Engine.GetShards()
            .Where(s => s.Id.ToString(System.Globalization.CultureInfo.InvariantCulture).StartsWith(word, StringComparison.Ordinal))
            .OrderBy(s => s.Id)
            .Select(s => Result(s.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
                $"shard {s.Id}: leader {(s.Leader == 0 ? "(none)" : s.Leader.ToString(System.Globalization.CultureInfo.InvariantCulture))}, voters {string.Join(",", s.Voters)}, {s.KeyCount} keys"));
}

/// <summary>Completes keys that start with the word typed so far, in key order (a stale read: no leader round trip).</summary>
public sealed class KeyCompleter : LiveCompleter
{
    protected override IEnumerable<CompletionResult> Complete(ReplicationCluster cluster, string word)
    {
        using var stop = new CancellationTokenSource(Deadline);
        var results = new List<CompletionResult>();
        var scan = cluster.Engine.ScanAsync(word, ReadConsistency.Stale, Deadline, stop.Token).GetAsyncEnumerator(stop.Token);
        try
        {
            while (results.Count < MaxResults && scan.MoveNextAsync().AsTask().GetAwaiter().GetResult())
            {
                var key = scan.Current;
                string value = key.Value.Length > 40 ? key.Value[..40] + "..." : key.Value;
                results.Add(Result(key.Key, $"{key.Key} = {value} (version {key.Version}, shard {key.Shard})"));
            }
        }
        catch (Exception e) when (e is Engine.ReplicationException or OperationCanceledException) { /* offer what was read */ }
        finally
        {
            try { scan.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
            catch (Exception e) when (e is Engine.ReplicationException or OperationCanceledException) { /* nothing left to release */ }
        }
        return results;
    }
}
