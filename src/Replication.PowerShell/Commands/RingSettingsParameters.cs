using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Reflection;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// The ring settings a cluster is founded with (-SplitKeys, -SplitWriteRate, -MaxConcurrentMoves, -TokensPerNode), declared
/// once for the two cmdlets that found one: New-ReplicationCluster (set Embedded) and Start-ReplicationNode (set Process).
/// Each cmdlet offers them in its own parameter set, which one static [Parameter] declaration cannot name for both, so
/// they are dynamic parameters (<see cref="IDynamicParameters"/>): the properties below are their only declaration (type,
/// validation, default, and the help text module/New-MamlHelp.ps1 reads from the cmdlet's field holding this object), and
/// <see cref="Define"/> turns them into the cmdlet's parameters in its set. One instance per cmdlet instance.
/// </summary>
public sealed class RingSettingsParameters
{
    private RuntimeDefinedParameterDictionary? _parameters;

    /// <summary>A shard holding more keys than this splits in two by itself (0: never by size). Default 1,000,000. Kept in the
    /// cluster's metadata when it is founded.</summary>
    [ValidateRange(0, long.MaxValue)]
    public long SplitKeys { get; set; } = ClusterSettings.DefaultSplitKeys;

    /// <summary>A shard committing more log entries per second than this (over 10 s) splits in two by itself (0, the default: never by rate).</summary>
    [ValidateRange(0.0, 1e9)]
    public double SplitWriteRate { get; set; }

    /// <summary>At most this many shards move replicas at once after nodes join or leave (1 to 64). Default 2.</summary>
    [ValidateRange(1, ClusterSettings.MaxMoves)]
    public int MaxConcurrentMoves { get; set; } = ClusterSettings.DefaultMaxConcurrentMoves;

    /// <summary>Virtual nodes per node on the consistent-hash ring (1 to 4096). Default 256 (measured: README, "The ring").</summary>
    [ValidateRange(1, 4096)]
    public int TokensPerNode { get; set; } = Replication.Engine.Ring.RingSettings.DefaultTokensPerNode;

    /// <summary>The parameters, in <paramref name="parameterSet"/>, each with its property's validation and default
    /// (for a cmdlet's <see cref="IDynamicParameters.GetDynamicParameters"/>; the binder fills the values in).</summary>
    public RuntimeDefinedParameterDictionary Define(string parameterSet)
    {
        if (_parameters is not null) return _parameters;
        _parameters = new RuntimeDefinedParameterDictionary();
        foreach (var property in typeof(RingSettingsParameters).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            var attributes = new Collection<Attribute> { new ParameterAttribute { ParameterSetName = parameterSet } };
            foreach (var validation in property.GetCustomAttributes<ValidateArgumentsAttribute>()) attributes.Add(validation);
            _parameters.Add(property.Name, new RuntimeDefinedParameter(property.Name, property.PropertyType, attributes) { Value = property.GetValue(this) });
        }
        return _parameters;
    }

    /// <summary>The settings the caller gave (the defaults for those not given); null when none was given (a reopened or
    /// joining node keeps the cluster's).</summary>
    public ClusterSettings? Given()
    {
        if (_parameters is null || !_parameters.Values.Any(p => p.IsSet)) return null;
        T Value<T>(string name) => (T)_parameters[name].Value;
        return new ClusterSettings
        {
            SplitKeys = Value<long>(nameof(SplitKeys)),
            SplitWriteRate = Value<double>(nameof(SplitWriteRate)),
            MaxConcurrentMoves = Value<int>(nameof(MaxConcurrentMoves)),
            TokensPerNode = Value<int>(nameof(TokensPerNode)),
        };
    }
}
