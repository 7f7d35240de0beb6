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
/// <code>Get-ReplicationShard -Key user:1, user:2</code>
/// Shows the shard each key hashes to, one row per key with the key in its first column.
/// </example>
/// <seealso cref="WaitReplicationLeaderCommand"/>
/// <seealso cref="GetReplicationKeyCommand"/>
/// <seealso cref="TestReplicationConsistencyCommand"/>
[Cmdlet(VerbsCommon.Get, "ReplicationShard", DefaultParameterSetName = IdSet)]
[OutputType(typeof(ReplicationShard))]
public sealed class GetReplicationShardCommand : ClusterCmdlet
{
    public const string IdSet = "Id";
    public const string KeySet = "Key";

    /// <summary>Shard ids; default: every shard. An unknown id is a non-terminating ShardNotFound error.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = IdSet)]
    [ArgumentCompleter(typeof(ShardIdCompleter))]
    public int[]? Id { get; set; }

    /// <summary>Keys whose shard to show: one shard per key, in input order, with the key in its Key property.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = KeySet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string[] Key { get; set; } = [];

    /// <summary>Type name of a shard written for -Key: a ReplicationShard with a Key note property (its own table view).</summary>
    public const string KeyedTypeName = "Replication.ReplicationShard#Key";

    /// <summary>The shard with the key it answers as a Key property. A copy per key: ETS members attach to the
    /// object itself, so two keys on one shard must not share one.</summary>
    private static PSObject WithKey(ReplicationShard shard, string key)
    {
        var result = new PSObject(shard with { });
        result.Properties.Add(new PSNoteProperty("Key", key));
        result.TypeNames.Insert(0, KeyedTypeName);
        return result;
    }

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
                WriteObject(WithKey(shards.First(s => s.HashStart <= hash && hash <= s.HashEnd), key));
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
