using System.Management.Automation;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Deletes keys from a cluster. Pipeline input binds by property name and is batched like
/// Set-ReplicationKey. Deleting a key
/// that does not exist succeeds silently (delete is idempotent) unless -ExpectedVersion is given,
/// which makes it conditional (a positive version that does not match is VersionConflict).
/// ConfirmImpact is Medium, not High: runbooks delete keys in bulk, and Remove-Item sets the same bar.
/// </summary>
/// <example>
/// <code>Remove-ReplicationKey -Key user:1</code>
/// Deletes one key; with ConfirmImpact Medium it prompts only where $ConfirmPreference is Medium or lower.
/// </example>
/// <example>
/// <code>'user:1', 'user:2' | Remove-ReplicationKey -Confirm:$false</code>
/// Deletes the keys whose names are piped in, without prompting.
/// </example>
/// <example>
/// <code>Get-ReplicationKey -Prefix session: | Remove-ReplicationKey -WhatIf</code>
/// Lists the deletes of every key that starts with session: without deleting anything; drop -WhatIf to delete them, in batches of 500.
/// </example>
[Cmdlet(VerbsCommon.Remove, "ReplicationKey", DefaultParameterSetName = DefaultSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveReplicationKeyCommand : KeyWriteCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>Keys to delete. A key that does not exist is skipped silently. Takes key names (strings) or objects with
    /// a Key property from the pipeline.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [AllowEmptyString]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string[] Key { get; set; } = Array.Empty<string>();

    /// <summary>Delete only if the key is at this version (1 or more). Empty (a blank CSV cell, '' or $null) = no condition.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [BlankAsNull]
    [ValidateVersion(1)]
    public long? ExpectedVersion { get; set; }

    protected override void ProcessRecord()
    {
        if (IsCoercedFromPipedObject(nameof(Key)))
        {
            // PowerShell turned a piped object without a Key property (a cluster, a node) into its ToString:
            // never delete a key because its name happens to match.
            Fail(NewErrorRecord(ErrorIds.InvalidPipelineInput, ErrorCategory.InvalidArgument,
                $"A piped {PipedObject!.GetType().Name} is not a key: pipe key names (strings) or objects with a Key property (Get-ReplicationKey).", PipedObject));
            return;
        }
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
