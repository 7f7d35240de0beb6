# Module manifest for Replication: a replicated, highly available key-value database for PowerShell.
# Build first (dotnet pwsh ./build.ps1 Build); the binary module is published to out/module.
@{
    RootModule           = 'out/module/Replication.PowerShell.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '3f6c0d52-8a4e-4f57-9a51-6f1f2d3c9b7e'
    Author               = 'Replication contributors'
    CompanyName          = 'Replication'
    Copyright            = '(c) Replication contributors.'
    Description          = 'A replicated, highly available key-value database: Raft groups, SQLite stores and loopback TCP, administered from PowerShell.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    # Loaded before TypesToProcess: the type data names the engine's record types and the module's type adapter.
    RequiredAssemblies   = @('out/module/Replication.Engine.dll', 'out/module/Replication.PowerShell.dll')
    FormatsToProcess     = @('module/Replication.format.ps1xml')
    TypesToProcess       = @('module/Replication.types.ps1xml')
    CmdletsToExport      = @(
        'New-ReplicationCluster'
        'Connect-ReplicationCluster'
        'Disconnect-ReplicationCluster'
        'Get-ReplicationCluster'
        'Remove-ReplicationCluster'
        'Get-ReplicationNode'
        'Start-ReplicationNode'
        'Stop-ReplicationNode'
        'Set-ReplicationKey'
        'Get-ReplicationKey'
        'Remove-ReplicationKey'
        'Wait-ReplicationLeader'
        'Get-ReplicationShard'
        'Backup-ReplicationCluster'
        'Backup-ReplicationNode'
        'Test-ReplicationBackup'
        'Restore-ReplicationCluster'
        'Restore-ReplicationNode'
        'Test-ReplicationConsistency'
        'New-ReplicationCertificate'
        'Export-ReplicationReport'
        'Get-ReplicationRing'
        'Add-ReplicationNode'
        'Remove-ReplicationNode'
        'Move-ReplicationShard'
        'Invoke-ReplicationRebalance'
        'Split-ReplicationShard'
        'Invoke-ReplicationFaultDrill'
        'Get-ReplicationEvent'
        'Invoke-ReplicationFailover'
        'Suspend-ReplicationNode'
        'Resume-ReplicationNode'
        'Restart-ReplicationNode'
        'Test-ReplicationCluster'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags = @('Raft', 'Replication', 'KeyValue', 'SQLite', 'Database')
        }
    }
}
