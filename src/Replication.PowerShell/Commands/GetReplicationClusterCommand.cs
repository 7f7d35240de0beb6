using System.Management.Automation;

namespace Replication.PowerShell.Commands;

/// <summary>Lists the clusters known in this process (created or connected, not yet removed).</summary>
/// <example>
/// <code>Get-ReplicationCluster</code>
/// Lists every cluster this session created or connected to.
/// </example>
/// <example>
/// <code>Get-ReplicationCluster -Name prod*</code>
/// Lists the clusters whose names start with prod.
/// </example>
[Cmdlet(VerbsCommon.Get, "ReplicationCluster", DefaultParameterSetName = NameSet)]
[OutputType(typeof(ReplicationCluster))]
public sealed class GetReplicationClusterCommand : ReplicationCmdlet
{
    public const string NameSet = "Name";

    /// <summary>Names to list; wildcards allowed. A name without wildcards that matches nothing is a
    /// non-terminating ClusterNotFound error.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = NameSet)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ClusterNameCompleter))]
    public string[]? Name { get; set; }

    protected override void ProcessRecord()
    {
        var clusters = ClusterRegistry.All;
        if (Name is null || Name.Length == 0)
        {
            WriteObject(clusters, enumerateCollection: true);
            return;
        }
        var written = new HashSet<ReplicationCluster>();
        foreach (var name in Name)
        {
            var pattern = WildcardPattern.Get(name, WildcardOptions.IgnoreCase);
            bool any = false;
            foreach (var cluster in clusters)
            {
                if (!pattern.IsMatch(cluster.Name)) continue;
                any = true;
                if (written.Add(cluster)) WriteObject(cluster);
            }
            if (!any && !WildcardPattern.ContainsWildcardCharacters(name))
                WriteError(NewErrorRecord(ErrorIds.ClusterNotFound, ErrorCategory.ObjectNotFound,
                    $"No cluster named '{name}' is known in this session.", name));
        }
    }
}
