# How Replication.HelpExamples.Tests.ps1 runs particular help examples. Every EXAMPLE of every cmdlet runs; an
# example not listed here runs as is, in a fresh folder, against a fresh embedded cluster named 'help' (3 nodes,
# 4 shards, started with the known secret $secret), which holds the keys user:1, user:2, session:1 and session:2,
# with ./users.csv beside it, $ConfirmPreference = 'None' (no prompts) and $ErrorActionPreference = 'Stop'.
# Read-Host and Get-Credential answer with the known secret. The system temp folder is redirected into the test
# drive, so default data folders (<temp>/Replication/<name>) do not touch the machine's.
#
# Keys are '<Cmdlet>#<example number>'. Settings:
#   Cluster     = name of the fresh cluster, or '' for none (the example makes its own, or needs none)
#   Before      = script run first in the example's scope (a backup to restore, a connection to close...)
#   Endpoints   = one role per distinct host:port literal of the example, in order of appearance; the literal is
#                 replaced by: 'Local' (an endpoint of the fresh cluster), 'Remote' (of the remote cluster another
#                 pwsh process runs, with $secret), 'RemoteEmpty' (of an empty remote cluster there), 'Seed' or
#                 'SecondSeed' (one of two nodes running alone in that process, to join), or 'Free' (a free loopback
#                 port to listen on).
#                 $RemoteEndpoints and $RemoteEmptyEndpoints hold the remote endpoints for Before scripts.
#   Blocking    = a script that is true once a blocking example (Start-ReplicationNode -Wait) is up; the example then
#                 runs in a runspace of its own and is stopped like Ctrl+C once that holds (within 120 s).
#   SyntaxOnly  = a reason: the example is only parsed. None so far: keep it that way.
# A new cmdlet's examples need an entry only when one of these applies.
@{
    'Add-ReplicationNode#3'          = @{ Endpoints = @('Local', 'Local') }
    'Invoke-ReplicationFailover#4'   = @{ Cluster = '' }
    'Move-ReplicationShard#1'        = @{ Before = 'Add-ReplicationNode | Out-Null' }
    'Remove-ReplicationNode#1'       = @{ Before = 'Add-ReplicationNode | Out-Null' }
    'Connect-ReplicationCluster#1'   = @{ Endpoints = @('Remote', 'Remote') }
    'Connect-ReplicationCluster#2'   = @{ Endpoints = @('Remote') }
    'Disconnect-ReplicationCluster#1' = @{ Before = 'Connect-ReplicationCluster -Endpoint $RemoteEndpoints -ClusterSecret $secret -Name remote-view | Out-Null' }
    'Get-ReplicationCluster#2'       = @{ Before = 'New-ReplicationCluster -Name prod-a -NodeCount 1 -ReplicationFactor 1 -ShardCount 1 | Out-Null' }
    'New-ReplicationCertificate#1'   = @{ Cluster = '' }
    'New-ReplicationCertificate#2'   = @{ Cluster = '' }
    'New-ReplicationCertificate#3'   = @{
        Cluster = ''
        Before  = 'New-ReplicationCertificate -CertificateAuthority -Path ./certs/ca | Out-Null; New-ReplicationCertificate -Node -Path ./certs/node1 -CaPath ./certs/ca -IPAddress 10.0.0.11 | Out-Null'
    }
    'New-ReplicationCluster#1'       = @{ Cluster = '' }
    'New-ReplicationCluster#2'       = @{ Cluster = ''; Before = 'New-ReplicationCluster -Name demo | Remove-ReplicationCluster' }
    'New-ReplicationCluster#3'       = @{ Cluster = '' }
    'Remove-ReplicationCluster#2'    = @{ Cluster = 'test' }
    'Restore-ReplicationCluster#1'   = @{ Before = 'Backup-ReplicationCluster -Path ./backups/b1 | Out-Null' }
    'Restore-ReplicationCluster#2'   = @{ Before = 'Backup-ReplicationCluster -Path ./backups/b1 | Out-Null' }
    'Restore-ReplicationCluster#3'   = @{ Before = 'Backup-ReplicationCluster -Path ./backups/b1 | Out-Null'; Endpoints = @('RemoteEmpty') }
    'Start-ReplicationNode#1'        = @{ Before = 'Stop-ReplicationNode -Id 2 | Out-Null' }
    'Start-ReplicationNode#2'        = @{
        Cluster   = ''
        Endpoints = @('Free')
        Blocking  = '@(Get-ReplicationCluster | Where-Object Mode -EQ Process | Get-ReplicationNode | Where-Object State -EQ Running).Count -eq 1'
    }
    'Start-ReplicationNode#3'        = @{
        Cluster   = ''
        Endpoints = @('Free', 'Seed')
        Blocking  = '@(Get-ReplicationCluster | Where-Object Mode -EQ Process | Get-ReplicationNode | Where-Object State -EQ Running).Count -eq 2'   # joined the seed
    }
    'Start-ReplicationNode#4'        = @{ Cluster = ''; Endpoints = @('Free') }
    'Start-ReplicationNode#5'        = @{
        Cluster   = ''
        Endpoints = @('Free', 'SecondSeed')   # the first seed lost its metadata quorum when example 3's node stopped
        Blocking  = '@(Get-ReplicationCluster | Where-Object Mode -EQ Process | Get-ReplicationNode | Where-Object { $_.State -eq ''Running'' -and $_.Role -eq ''Learner'' }).Count -eq 1'   # joined the seed as a learner
    }
    'Test-ReplicationBackup#1'       = @{ Before = 'Backup-ReplicationCluster -Path ./backups/b1 | Out-Null' }
    'Test-ReplicationBackup#2'       = @{ Before = 'Backup-ReplicationCluster -Path ./backups/b1 | Out-Null' }
    'Wait-ReplicationLeader#1'       = @{ Cluster = '' }
}
