# Get-ReplicationEvent in both shapes (Shapes.ps1): every node's history gathered through the cluster client, merged
# by time, with elections and their reasons, and node starts and stops that survive the node's restart.
BeforeDiscovery {
    $script:Shapes = @(@{ Shape = 'Embedded' }, @{ Shape = 'Process' })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    . (Join-Path $PSScriptRoot 'Shapes.ps1')
    Import-Module $Manifest -Force
}

Describe 'Get-ReplicationEvent (<Shape>)' -ForEach $Shapes {
    BeforeAll {
        $script:cluster = New-TestCluster -Shape $Shape -Name "events-$($Shape.ToLower())" -Root $TestDrive
    }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'merges every node''s history by time: starts, and the election each shard''s leader won' {
        $events = @(Get-ReplicationEvent -Cluster $cluster)
        $events[0] | Should -BeOfType ([Replication.ReplicationEvent])
        @($events | Where-Object Type -EQ 'NodeStarted' | Select-Object -ExpandProperty Node -Unique | Sort-Object) | Should -Be @(1, 2, 3)
        ($events.Time | ForEach-Object { $_.UtcTicks }) -join ',' | Should -Be ((($events.Time | ForEach-Object { $_.UtcTicks }) | Sort-Object) -join ',')
        foreach ($shard in Get-ReplicationShard -Cluster $cluster) {
            $won = @(Get-ReplicationEvent -Cluster $cluster -Type LeaderElected -Shard $shard.Id -Last 1)
            $won | Should -HaveCount 1
            $won[0].Message | Should -Match 'became leader in term \d+ \(.+\)'
            $won[0].Term | Should -BeGreaterThan 0
        }
        @(Get-ReplicationEvent -Cluster $cluster -Last 2) | Should -HaveCount 2
        Get-ReplicationEvent -Cluster $cluster -Node 2 | ForEach-Object { $_.Node | Should -Be 2 }
        Get-ReplicationEvent -Cluster $cluster -Since ([DateTime]::Now.AddMinutes(10)) | Should -BeNullOrEmpty
        { Get-ReplicationEvent -Cluster $cluster -Node 9 } | Should -Throw -ErrorId 'NodeNotFound,Replication.PowerShell.Commands.GetReplicationEventCommand'
    }

    It 'records a new leader after the old one was killed, and the restarts, clean or not, across the node''s restart' {
        $shard0 = (Wait-ReplicationLeader -Cluster $cluster -Shard 0 -Timeout 30)
        $old = $shard0.Leader
        $before = [DateTimeOffset]::UtcNow
        Stop-TestNodeHard -Cluster $cluster -Id $old
        Wait-Condition -Because 'shard 0 has a new leader' -Condition { (Get-ReplicationShard -Cluster $cluster -Id 0).Leader -notin 0, $old }
        Wait-Condition -Because 'the new leader''s election is in the history' -Condition {
            @(Get-ReplicationEvent -Cluster $cluster -Type LeaderElected -Shard 0 -WarningAction SilentlyContinue |
                Where-Object { $_.Time -ge $before -and $_.Node -ne $old }).Count -gt 0
        }
        Get-ReplicationEvent -Cluster $cluster -Last 1 -WarningVariable unread -WarningAction SilentlyContinue | Out-Null
        ($unread -join "`n") | Should -Match "node $old"

        Start-TestNode -Cluster $cluster -Id $old | Out-Null
        $started = @(Get-ReplicationEvent -Cluster $cluster -Node $old -Type NodeStarted -Last 1)
        $started[0].Message | Should -Match 'unclean stop'

        Stop-ReplicationNode -Cluster $cluster -Id $old -Confirm:$false | Out-Null
        Start-TestNode -Cluster $cluster -Id $old | Out-Null
        $last = @(Get-ReplicationEvent -Cluster $cluster -Node $old -Type NodeStarted, NodeStopped -Last 2)
        $last.Type | Should -Be @('NodeStopped', 'NodeStarted')
        $last[1].Message | Should -Match 'after a clean stop'
        @(Get-ReplicationEvent -Cluster $cluster -Node $old -Type NodeStarted).Count | Should -BeGreaterOrEqual 3
    }
}
