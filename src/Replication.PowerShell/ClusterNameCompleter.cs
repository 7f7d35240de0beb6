using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace Replication.PowerShell;

/// <summary>Tab completion of cluster names known in this process.</summary>
public sealed class ClusterNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var pattern = WildcardPattern.Get((wordToComplete ?? string.Empty).Trim('\'', '"') + "*", WildcardOptions.IgnoreCase);
        foreach (var cluster in ClusterRegistry.All)
            if (pattern.IsMatch(cluster.Name))
                yield return new CompletionResult(cluster.Name.Contains(' ') ? $"'{cluster.Name}'" : cluster.Name,
                    cluster.Name, CompletionResultType.ParameterValue, $"{cluster.Name} ({cluster.State}, {cluster.Path})");
    }
}
