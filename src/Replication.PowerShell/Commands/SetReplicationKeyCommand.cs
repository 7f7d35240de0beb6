using System.Management.Automation;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Writes keys to a cluster, one at a time or many from the pipeline. Pipeline input binds by
/// property name (Key, Value, ExpectedVersion, Cluster) and goes to the engine in batches of 500, up to
/// -ThrottleLimit of them in flight at once (KeyWriteCmdlet); one bad item fails alone (a non-terminating error) while the others are written. -ExpectedVersion
/// makes a write conditional: 0 = the key must not exist, n = its version must be n; otherwise
/// VersionConflict, nothing written.
/// </summary>
/// <example>
/// <code>Set-ReplicationKey -Key user:1 -Value alice</code>
/// Writes one key to the current cluster, acknowledged once a majority of its shard's replicas have it.
/// </example>
/// <example>
/// <code>Import-Csv users.csv | Set-ReplicationKey</code>
/// Writes every row of a CSV file with columns Key and Value (and optionally ExpectedVersion; a blank cell means no condition), in batches of 500,
/// up to 2 batches in flight at once while Import-Csv reads on.
/// </example>
/// <example>
/// <code>Import-Csv users.csv | Set-ReplicationKey -ThrottleLimit 8 -PassThru | Select-Object Key, Version</code>
/// The same with up to 8 batches in flight; the written keys still come out in the order of the file's rows, and a row
/// that fails (its own error, e.g. VersionConflict) fails alone.
/// </example>
/// <example>
/// <code>
/// $k = Get-ReplicationKey user:2
/// Set-ReplicationKey user:2 -Value bob -ExpectedVersion $k.Version
/// </code>
/// Compare-and-set: writes only if nobody changed user:2 since it was read, otherwise fails with VersionConflict.
/// </example>
/// <seealso cref="GetReplicationShardCommand"/>
[Cmdlet(VerbsCommon.Set, "ReplicationKey", DefaultParameterSetName = DefaultSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ReplicationKey))]
public sealed class SetReplicationKeyCommand : KeyWriteCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>The key to write: non-empty, at most 1024 UTF-8 bytes (otherwise EmptyKey / KeyTooLong).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [AllowEmptyString]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string Key { get; set; } = string.Empty;

    /// <summary>The value to write: text of at most 1 MiB of UTF-8 (otherwise ValueTooLarge); may be empty. Numbers,
    /// booleans, dates (ISO 8601), GUIDs and enums are converted to text culture-invariantly; a hashtable, an array or
    /// a custom object is refused (ValueNotText): convert it first, e.g. with ConvertTo-Json.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [AllowEmptyString]
    public object Value { get; set; } = string.Empty;

    /// <summary>Write only if the key is at this version: 0 = the key must not exist yet, n = its
    /// Version must be n. Otherwise the write fails with VersionConflict and nothing is written. Empty (a blank
    /// CSV cell, '' or $null) = no condition.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [BlankAsNull]
    [ValidateVersion(0)]
    public long? ExpectedVersion { get; set; }

    /// <summary>Write the stored key (with its new Version and Index) for each successful write.</summary>
    [Parameter(ParameterSetName = DefaultSet)]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(Key, "Set value")) return;
        var text = ValueText.Convert(Value, out var problem);
        if (text is null)
        {
            Fail(NewErrorRecord(ErrorIds.ValueNotText, ErrorCategory.InvalidArgument, $"'{Key}': {problem}", Key));
            return;
        }
        Enqueue(new KeyWrite(Key, text, ExpectedVersion));
    }

    protected override void OnWritten(WriteResult result)
    {
        if (PassThru && result.Record is not null) WriteObject(result.Record);
    }
}
