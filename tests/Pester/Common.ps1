# Shared by the *.Tests.ps1 files (dot-sourced in BeforeAll). Not a test file itself.
$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:Manifest = Join-Path $script:RepoRoot 'Replication.psd1'

function Wait-Condition {
    # Polls $Condition until it returns a true value; throws after $Timeout. Every wait in these
    # tests is a condition with a bound like this, never a fixed sleep.
    param(
        [Parameter(Mandatory)] [scriptblock] $Condition,
        [timespan] $Timeout = '00:00:30',
        [Parameter(Mandatory)] [string] $Because
    )
    $deadline = [DateTime]::UtcNow + $Timeout
    while (-not (& $Condition)) {
        if ([DateTime]::UtcNow -ge $deadline) { throw "Timed out after $Timeout waiting until $Because." }
        Start-Sleep -Milliseconds 50
    }
}

function Get-LeadingNodeId {
    # The node that leads the most shards of the given cluster.
    param([Parameter(Mandatory)] $Cluster)
    (Get-ReplicationNode -Cluster $Cluster | Sort-Object ShardsLed -Descending | Select-Object -First 1).Id
}

function Remove-AllReplicationClusters {
    Get-ReplicationCluster | Where-Object Mode -EQ 'Remote' | Disconnect-ReplicationCluster
    Get-ReplicationCluster | Remove-ReplicationCluster -DeleteData -Confirm:$false
}
