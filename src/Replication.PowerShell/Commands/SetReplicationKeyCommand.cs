using System.Management.Automation;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Writes keys. Takes pipeline input by property name (Key, Value, ExpectedVersion, Cluster) and
/// batches it (see <see cref="KeyWriteCmdlet"/>). -ExpectedVersion makes a write conditional:
/// 0 = the key must not exist, n = its version must be n; otherwise VersionConflict, nothing written.
/// </summary>
[Cmdlet(VerbsCommon.Set, "ReplicationKey", DefaultParameterSetName = DefaultSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ReplicationKey))]
public sealed class SetReplicationKeyCommand : KeyWriteCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>Non-empty, at most 1024 UTF-8 bytes (the engine checks; EmptyKey / KeyTooLong).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [AllowEmptyString]
    public string Key { get; set; } = string.Empty;

    /// <summary>At most 1 MiB of UTF-8 (ValueTooLarge). May be empty.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [AllowEmptyString]
    public string Value { get; set; } = string.Empty;

    [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [ValidateRange(0, long.MaxValue)]
    public long? ExpectedVersion { get; set; }

    /// <summary>Write the stored key (with its new Version and Index) for each successful write.</summary>
    [Parameter(ParameterSetName = DefaultSet)]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(Key, "Set value")) return;
        Enqueue(new KeyWrite(Key, Value ?? string.Empty, ExpectedVersion));
    }

    protected override void OnWritten(WriteResult result)
    {
        if (PassThru && result.Record is not null) WriteObject(result.Record);
    }
}
