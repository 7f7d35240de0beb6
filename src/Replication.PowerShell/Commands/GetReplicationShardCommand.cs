using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;
using Replication.Engine.Ring;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Gets each shard's placement and Raft state: leader, voters, learners, term, commit index, key count. With
/// -Key, the shard each key hashes to (the same stable hash the engine routes by).
/// </summary>
/// <example>
/// <code>Get-ReplicationShard</code>
/// Lists every shard with its leader, voters, term, commit index and key count.
/// </example>
/// <example>
/// <code>Get-ReplicationShard -Key user:1</code>
/// Shows the shard that the key user:1 hashes to.
/// </example>
[Cmdlet(VerbsCommon.Get, "ReplicationShard", DefaultParameterSetName = IdSet)]
[OutputType(typeof(ReplicationShard))]
public sealed class GetReplicationShardCommand : ClusterCmdlet
{
    public const string IdSet = "Id";
    public const string KeySet = "Key";

    /// <summary>Shard ids; default: every shard. An unknown id is a non-terminating ShardNotFound error.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = IdSet)]
    public int[]? Id { get; set; }

    /// <summary>Keys whose shard to show (one object per key, in input order).</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = KeySet)]
    [ValidateNotNullOrEmpty]
    public string[] Key { get; set; } = [];

    protected override void ProcessRecord()
    {
        var cluster = ResolveCluster();
        IReadOnlyList<ReplicationShard> shards;
        try
        {
            shards = cluster.Engine.GetShards();
        }
        catch (ReplicationException e)
        {
            ThrowEngineError(e, cluster);
            return;
        }
        if (ParameterSetName == KeySet)
        {
            foreach (var key in Key)
            {
                ulong hash = KeyHash.Of(key);
                WriteObject(shards.First(s => s.HashStart <= hash && hash <= s.HashEnd));
            }
            return;
        }
        if (Id is null || Id.Length == 0)
        {
            WriteObject(shards, enumerateCollection: true);
            return;
        }
        foreach (int id in Id)
        {
            if (shards.FirstOrDefault(s => s.Id == id) is { } shard) WriteObject(shard);
            else WriteEngineError(new ShardNotFoundException(id) { Target = id }, id);
        }
    }
}
