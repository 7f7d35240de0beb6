using System.Management.Automation;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Deletes keys; pipeline input by property name, batched like Set-ReplicationKey. Deleting a key
/// that does not exist succeeds silently (delete is idempotent) unless -ExpectedVersion is given,
/// which makes it conditional (a positive version that does not match is VersionConflict).
/// ConfirmImpact is Medium, not High: runbooks delete keys in bulk, and Remove-Item sets the same bar.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "ReplicationKey", DefaultParameterSetName = DefaultSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveReplicationKeyCommand : KeyWriteCmdlet
{
    public const string DefaultSet = "Default";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [AllowEmptyString]
    public string[] Key { get; set; } = Array.Empty<string>();

    /// <summary>Delete only if the key is at this version (1 or more).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [ValidateRange(1, long.MaxValue)]
    public long? ExpectedVersion { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var key in Key)
        {
            if (!ShouldProcess(key, "Delete key")) continue;
            Enqueue(new KeyWrite(key ?? string.Empty, null, ExpectedVersion));
        }
    }

    protected override void OnWritten(WriteResult result)
    {
        if (!result.Existed) WriteVerbose($"Key '{result.Write.Key}' did not exist; nothing to delete.");
    }
}
