# Failures as an operator meets them: quorum loss, killing the leader under a stream of writes,
# and a killed node catching up after a restart. Every wait is a condition with a bound.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
}

Describe 'A write without a quorum' {
    BeforeAll {
        $cluster = New-ReplicationCluster -Name 'noquorum' -Path (Join-Path $TestDrive 'noquorum')
        Wait-ReplicationLeader -Cluster $cluster -Timeout 00:00:30 | Out-Null
    }
    AfterAll { Remove-ReplicationCluster -Cluster $cluster -DeleteData -Confirm:$false }

    It 'fails with QuorumUnavailable after the timeout, never hangs, and the cluster keeps running' {
        Set-ReplicationKey -Cluster $cluster -Key 'before' -Value 'ok'
        Stop-ReplicationNode -Cluster $cluster -Id 1, 2 -Confirm:$false | Out-Null
        $watch = [Diagnostics.Stopwatch]::StartNew()
        Set-ReplicationKey -Cluster $cluster -Key 'lost' -Value 'x' -Timeout 00:00:02 -ErrorAction SilentlyContinue -ErrorVariable err
        $watch.Stop()
        $err | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -Be 'QuorumUnavailable,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        $err[0].CategoryInfo.Category | Should -Be 'OperationTimeout'
        $watch.Elapsed.TotalSeconds | Should -BeGreaterOrEqual 1.5
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 15

        { Wait-ReplicationLeader -Cluster $cluster -Timeout 00:00:01 } |
            Should -Throw -ErrorId 'QuorumUnavailable,Replication.PowerShell.Commands.WaitReplicationLeaderCommand'

        Start-ReplicationNode -Cluster $cluster -Id 1, 2 | Out-Null
        Wait-ReplicationLeader -Cluster $cluster -Timeout 00:00:30 | Out-Null
        (Get-ReplicationKey -Cluster $cluster -Key 'before').Value | Should -Be 'ok'
        Set-ReplicationKey -Cluster $cluster -Key 'after' -Value 'ok'
        (Get-ReplicationKey -Cluster $cluster -Key 'after').Value | Should -Be 'ok'
    }
}

Describe 'Killing the leader under a stream of writes' {
    BeforeAll {
        $cluster = New-ReplicationCluster -Name 'failover' -Path (Join-Path $TestDrive 'failover')
        Wait-ReplicationLeader -Cluster $cluster -Timeout 00:00:30 | Out-Null
    }
    AfterAll { Remove-ReplicationCluster -Cluster $cluster -DeleteData -Confirm:$false }

    It 'keeps every acknowledged write readable' {
        $acked = [System.Collections.Concurrent.ConcurrentQueue[string]]::new()
        $stop = [System.Collections.Concurrent.ConcurrentDictionary[string, bool]]::new()
        $maxWrites = 5000
        # The writer runs in another runspace of this process (as a runbook's Start-ThreadJob would)
        # and reaches the cluster by name through the process-wide registry.
        $writer = Start-ThreadJob -ArgumentList $Manifest, $acked, $stop, $maxWrites -ScriptBlock {
            param($manifest, $acked, $stop, $maxWrites)
            Import-Module $manifest
            $failed = 0
            for ($i = 1; $i -le $maxWrites -and -not $stop.ContainsKey('stop'); $i++) {
                try {
                    Set-ReplicationKey -Cluster 'failover' -Key "stream:$i" -Value "value $i" -Timeout 00:00:05 -ErrorAction Stop
                    $acked.Enqueue("stream:$i")
                }
                catch { $failed++ }
            }
            $failed
        }
        try {
            Wait-Condition { $acked.Count -ge 50 } -Timeout 00:01:00 -Because 'the writer has 50 acknowledged writes'
            $leader = Get-LeadingNodeId -Cluster $cluster
            $atKill = $acked.Count
            Stop-ReplicationNode -Cluster $cluster -Id $leader -Kill -Confirm:$false | Out-Null
            Wait-Condition { $acked.Count -ge $atKill + 100 -or $writer.State -ne 'Running' } -Timeout 00:01:00 -Because 'writes continue after the kill'
            $stop['stop'] = $true
            Wait-Job $writer -Timeout 60 | Out-Null
            $writer.State | Should -Be 'Completed'
            $failedWrites = Receive-Job $writer
        }
        finally {
            $stop['stop'] = $true
            Remove-Job $writer -Force
        }

        $atKill | Should -BeLessThan $maxWrites -Because 'the leader was killed while writes were still being issued'
        $acked.Count | Should -BeGreaterThan ($atKill + 50) -Because 'the surviving nodes elected a leader and kept acknowledging'
        Write-Host "  acknowledged $($acked.Count) writes ($atKill before the kill of node $leader), $failedWrites unacknowledged"

        Wait-ReplicationLeader -Cluster $cluster -Timeout 00:00:30 | Out-Null
        $stored = @{}
        Get-ReplicationKey -Cluster $cluster -Prefix 'stream:' | ForEach-Object { $stored[$_.Key] = $_.Value }
        $missing = @($acked.ToArray() | Where-Object { $stored[$_] -ne ('value ' + $_.Substring(7)) })
        $missing | Should -BeNullOrEmpty -Because 'every acknowledged write must survive the failover'
        (Get-ReplicationNode -Cluster $cluster -Id $leader).State | Should -Be 'Stopped'
        # The surviving nodes lead every shard. Checked as a bounded wait, not at one instant: right after the failover the
        # balancer hands leaderships between the two survivors, and a shard in the middle of a transfer shows no leader
        # until the new one reports (seen once in a full run: 3 of 4).
        Wait-Condition -Timeout 00:00:30 -Because 'the running nodes lead every shard' -Condition {
            (Get-ReplicationNode -Cluster $cluster | Where-Object State -EQ 'Running' | Measure-Object ShardsLed -Sum).Sum -eq $cluster.ShardCount
        }
    }

    It 'lets the killed node rejoin and catch up' {
        $down = (Get-ReplicationNode -Cluster $cluster | Where-Object State -EQ 'Stopped').Id
        $down | Should -HaveCount 1
        1..200 | ForEach-Object { [pscustomobject]@{ Key = "while-down:$_"; Value = "$_" } } | Set-ReplicationKey -Cluster $cluster
        $restarted = Start-ReplicationNode -Cluster $cluster -Id $down
        $restarted.State | Should -Be 'Running'
        Wait-Condition -Timeout 00:01:00 -Because "node $down has applied what the others have" {
            $nodes = Get-ReplicationNode -Cluster $cluster
            $me = $nodes | Where-Object Id -EQ $down
            $others = $nodes | Where-Object Id -NE $down
            $target = ($others | Measure-Object AppliedIndex -Maximum).Maximum
            $me.AppliedIndex -eq $target -and $me.CommitIndex -ge ($others | Measure-Object CommitIndex -Minimum).Minimum -and $me.LagEntries -eq 0 -and
                # Every node: the Stale scan below reads the replicas of the node this session is connected to.
                -not ($nodes | Where-Object { $_.LagEntries -ne 0 }) -and @($nodes.AppliedIndex | Sort-Object -Unique).Count -eq 1
        }
        (Get-ReplicationKey -Cluster $cluster -Prefix 'while-down:' -Consistency Stale) | Should -HaveCount 200
    }
}
