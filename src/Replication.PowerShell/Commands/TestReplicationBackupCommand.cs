using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Verifies a backup folder: the manifest's checksum, every file's size and SHA-256, and that each
/// file opens and holds the stated shards and key counts. A good backup is written with Valid =
/// $true. A bad one gives a non-terminating BackupCorrupt error naming the file and, when its
/// manifest is readable, the backup with Valid = $false and the Problem. No cluster needed. Shows progress per file
/// and shard checked.
/// </summary>
/// <example>
/// <code>Test-ReplicationBackup -Path ./backups/b1</code>
/// Verifies the backup's manifest checksum, every file's SHA-256 and the key counts; Valid is $true for a good backup.
/// </example>
/// <example>
/// <code>Get-ChildItem ./backups -Directory | ForEach-Object FullName | Test-ReplicationBackup | Where-Object Valid -EQ $false</code>
/// Checks every backup folder and lists the backups that failed, with their Problem.
/// </example>
/// <seealso cref="BackupReplicationClusterCommand"/>
/// <seealso cref="BackupReplicationNodeCommand"/>
/// <seealso cref="RestoreReplicationClusterCommand"/>
[Cmdlet(VerbsDiagnostic.Test, "ReplicationBackup", DefaultParameterSetName = DefaultSet)]
[OutputType(typeof(ReplicationBackup))]
public sealed class TestReplicationBackupCommand : ReplicationCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>Backup folder(s); binds the Path of piped ReplicationBackup objects.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    protected override void ProcessRecord()
    {
        foreach (var p in Path)
        {
            string path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(p);
            try
            {
                WriteVerbose($"Verifying backup {path}.");
                var pump = new ProgressPump(activityId: 5);
                var task = Task.Run(() => Backups.Verify(path, pump, StopToken));
                pump.WaitPumping(task, this);
                WriteObject(Await(task));
            }
            catch (BackupCorruptException e)
            {
                if (Backups.TryDescribe(path, e.Message) is { } described) WriteObject(described);
                WriteEngineError(e, e.File);
            }
            catch (ReplicationException e)
            {
                WriteEngineError(e, path);
            }
        }
    }
}
