<#
.SYNOPSIS
    The Replication demo runbook: an embedded 3-node cluster survives the loss of its leader.
.DESCRIPTION
    Creates a cluster under a temp folder, writes 1,000 keys through the pipeline, kills the node
    that leads the most shards, waits for new leaders, reads every key back, restarts the killed
    node, waits until it has caught up, and removes the cluster. Exits nonzero if anything did not
    hold. Run it with: dotnet pwsh ./build.ps1 Demo
#>
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$failures = [System.Collections.Generic.List[string]]::new()

function Step([string] $Text) { Write-Host "`n== $Text" }
function Check([bool] $Condition, [string] $Text) {
    if ($Condition) { Write-Host "   ok: $Text" } else { Write-Host "   FAILED: $Text"; $failures.Add($Text) }
}

Import-Module (Join-Path $PSScriptRoot '../Replication.psd1')

$path = Join-Path ([IO.Path]::GetTempPath()) "replication-demo-$PID"
Step "New-ReplicationCluster -Name demo -NodeCount 3 -Path $path"
$cluster = New-ReplicationCluster -Name demo -NodeCount 3 -Path $path
try {
    $cluster | Format-Table | Out-String -Width 160 | Write-Host
    Step 'Wait-ReplicationLeader'
    Wait-ReplicationLeader -Timeout 30 | Format-Table | Out-String -Width 160 | Write-Host

    Step "1..1000 | ForEach-Object { [pscustomobject]@{ Key = `"user:`$_`"; Value = `"v`$_`" } } | Set-ReplicationKey"
    $watch = [Diagnostics.Stopwatch]::StartNew()
    1..1000 | ForEach-Object { [pscustomobject]@{ Key = "user:$_"; Value = "v$_" } } | Set-ReplicationKey
    Write-Host ("   wrote 1000 keys in {0:0.00} s" -f $watch.Elapsed.TotalSeconds)

    Step 'Get-ReplicationNode | Format-Table'
    Get-ReplicationNode | Format-Table | Out-String -Width 160 | Write-Host

    # There are several shards, each with its own leader: "the leader" is the node leading the most.
    $leader = (Get-ReplicationNode | Sort-Object ShardsLed -Descending | Select-Object -First 1).Id
    Step "Stop-ReplicationNode -Id $leader -Kill   (node $leader leads the most shards)"
    Stop-ReplicationNode -Id $leader -Kill -Confirm:$false | Format-Table | Out-String -Width 160 | Write-Host

    Step 'Wait-ReplicationLeader'
    $watch.Restart()
    $shards = Wait-ReplicationLeader -Timeout 30
    Write-Host ("   every shard has a leader again after {0:0.00} s" -f $watch.Elapsed.TotalSeconds)
    $shards | Format-Table | Out-String -Width 160 | Write-Host
    Check (@($shards | Where-Object Leader -EQ $leader).Count -eq 0) "no shard is led by the killed node $leader"

    Step 'Get-ReplicationKey -Prefix user: | Measure-Object'
    $keys = @(Get-ReplicationKey -Prefix 'user:')
    $correct = @($keys | Where-Object { $_.Value -eq ('v' + $_.Key.Substring(5)) }).Count
    Write-Host "   $correct of 1000 keys found"
    Check ($keys.Count -eq 1000 -and $correct -eq 1000) '1000 of 1000 keys found with their values'

    Step "Start-ReplicationNode -Id $leader"
    Start-ReplicationNode -Id $leader | Format-Table | Out-String -Width 160 | Write-Host

    Step "Waiting (at most 60 s) until node $leader has caught up"
    $deadline = [DateTime]::UtcNow.AddSeconds(60)
    do {
        $nodes = Get-ReplicationNode
        $me = $nodes | Where-Object Id -EQ $leader
        $others = @($nodes | Where-Object Id -NE $leader)
        $caughtUp = $me.State -eq 'Running' -and $me.LagEntries -eq 0 -and
            @($others | Where-Object { $_.AppliedIndex -ne $me.AppliedIndex -or $_.CommitIndex -ne $me.CommitIndex }).Count -eq 0
        if (-not $caughtUp) { Start-Sleep -Milliseconds 100 }
    } until ($caughtUp -or [DateTime]::UtcNow -ge $deadline)
    $nodes | Format-Table | Out-String -Width 160 | Write-Host
    Check $caughtUp "node $leader has the same commit and applied index as the others"

    Step 'Add-ReplicationNode: the ring moves a share of the replicas to node 4'
    $added = Add-ReplicationNode -Timeout 120
    Get-ReplicationRing | Format-Table | Out-String -Width 160 | Write-Host
    Check (@(Get-ReplicationRing | Where-Object { $_.Node -eq $added.Id -and $_.ShardsHeld -gt 0 }).Count -eq 1) "node $($added.Id) holds replicas"

    Step 'Remove-ReplicationNode -Id 1: its replicas move away, then it leaves'
    Remove-ReplicationNode -Id 1 -Timeout 120 -Confirm:$false
    Get-ReplicationRing | Format-Table | Out-String -Width 160 | Write-Host
    $shards = @(Get-ReplicationShard)
    Check (-not (Get-ReplicationNode | Where-Object Id -EQ 1) -and -not ($shards | Where-Object { $_.Voters.Count -ne 3 -or $_.Voters -contains 1 })) 'node 1 is gone and every shard still has 3 voters'
    Check (@(Get-ReplicationKey -Prefix 'user:').Count -eq 1000) '1000 of 1000 keys still there'
}
finally {
    Step 'Remove-ReplicationCluster -DeleteData'
    Remove-ReplicationCluster -Cluster $cluster -DeleteData -Confirm:$false
    Check (-not (Test-Path $path)) "the data folder $path is gone"
}

if ($failures.Count -gt 0) {
    Write-Host "`nDemo FAILED: $($failures -join '; ')"
    exit 1
}
Write-Host "`nDemo passed."
exit 0
