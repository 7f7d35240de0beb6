# Invoke-ReplicationFailover (planned switchover) in both shapes (Shapes.ps1): leadership moves by leader transfer
# while a thread job writes, and every acknowledged write is still there afterwards.
BeforeDiscovery {
    $script:Shapes = @(@{ Shape = 'Embedded' }, @{ Shape = 'Process' })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    . (Join-Path $PSScriptRoot 'Shapes.ps1')
    Import-Module $Manifest -Force
}

Describe 'Invoke-ReplicationFailover (<Shape>)' -ForEach $Shapes {
    BeforeAll {
        $script:cluster = New-TestCluster -Shape $Shape -Name "switch-$($Shape.ToLower())" -Root $TestDrive
    }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'moves a shard''s leadership under a stream of writes and loses no acknowledged write' {
        $old = (Wait-ReplicationLeader -Cluster $cluster -Shard 0 -Timeout 30).Leader
        $target = @(1, 2, 3 | Where-Object { $_ -ne $old })[0]
        # The module's cluster registry is per process: the thread job writes to the same cluster by name.
        $stop = [System.Threading.ManualResetEventSlim]::new($false)
        $job = Start-ThreadJob -ArgumentList $Manifest, $cluster.Name, $stop -ScriptBlock {
            param($manifest, $name, $stop)
            Import-Module $manifest
            $acknowledged = [System.Collections.Generic.List[string]]::new()
            for ($i = 0; $i -lt 3000 -and -not $stop.IsSet; $i++) {
                try {
                    Set-ReplicationKey -Cluster $name -Key "sw:$i" -Value "v$i" -Timeout 20 -ErrorAction Stop
                    $acknowledged.Add("sw:$i")
                }
                catch { } # not acknowledged: its outcome is not asserted on
            }
            $acknowledged # one string per acknowledged key
        }
        try {
            Wait-Condition -Because 'the writer has started' -Condition { @(Get-ReplicationKey -Cluster $cluster -Prefix 'sw:').Count -ge 10 }
            $result = Invoke-ReplicationFailover -Cluster $cluster -Shard 0 -TargetNode $target
            $result | Should -BeOfType ([Replication.ReplicationFailover])
            $result.OldLeader | Should -Be $old
            $result.NewLeader | Should -Be $target
            $result.Kind | Should -Be 'Planned'
            $result.LostEntries | Should -Be 0
            $before = @(Get-ReplicationKey -Cluster $cluster -Prefix 'sw:').Count
            Wait-Condition -Because 'writes go on after the switchover' -Condition { @(Get-ReplicationKey -Cluster $cluster -Prefix 'sw:').Count -ge $before + 10 }
        }
        finally {
            $stop.Set()
            $acknowledged = @(Receive-Job -Job $job -Wait -AutoRemoveJob)
        }
        $acknowledged.Count | Should -BeGreaterThan 20
        $stored = @{}
        Get-ReplicationKey -Cluster $cluster -Prefix 'sw:' | ForEach-Object { $stored[$_.Key] = $_.Value }
        $missing = @($acknowledged | Where-Object { -not $stored.ContainsKey($_) })
        $missing | Should -BeNullOrEmpty
        # (Who leads afterwards is also the leader balancer's business: it may move the leadership back.)
        @(Get-ReplicationEvent -Cluster $cluster -Type Switchover -Shard 0) | Where-Object { $_.Node -eq $old -and $_.Message -match "to node $target" } |
            Should -Not -BeNullOrEmpty
    }

    It 'chooses the best voter without -TargetNode, moves a node''s leaderships away through the pipeline, and refuses bad targets' {
        $moved = @(Get-ReplicationShard -Cluster $cluster | Where-Object Leader -EQ 1 | Invoke-ReplicationFailover -Cluster $cluster)
        # What happens next is the leader balancer's business (it may bring leaderships back; Suspend-ReplicationNode stops it).
        $moved | ForEach-Object { $_.OldLeader | Should -Be 1; $_.NewLeader | Should -Not -Be 1; $_.Duration | Should -BeGreaterThan ([TimeSpan]::Zero) }
        { Invoke-ReplicationFailover -Cluster $cluster -Shard 0 -TargetNode 9 -ErrorAction Stop } |
            Should -Throw -ErrorId 'NodeNotFound,Replication.PowerShell.Commands.InvokeReplicationFailoverCommand'
        { Invoke-ReplicationFailover -Cluster $cluster -Shard 42 -ErrorAction Stop } |
            Should -Throw -ErrorId 'ShardNotFound,Replication.PowerShell.Commands.InvokeReplicationFailoverCommand'
    }
}

Describe 'Suspend-ReplicationNode and Resume-ReplicationNode (<Shape>)' -ForEach $Shapes {
    BeforeAll {
        $script:cluster = New-TestCluster -Shape $Shape -Name "maint-$($Shape.ToLower())" -Root $TestDrive
    }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'drains a node of its leaderships; it keeps replicating, and leads again once resumed' {
        $x = (Wait-ReplicationLeader -Cluster $cluster -Shard 0 -Timeout 30).Leader
        $node = Suspend-ReplicationNode -Cluster $cluster -Id $x -Drain
        $node.Suspended | Should -BeTrue
        Get-ReplicationShard -Cluster $cluster | Where-Object Leader -EQ $x | Should -BeNullOrEmpty
        1..20 | ForEach-Object { [pscustomobject]@{ Key = "maint:$_"; Value = "m$_" } } | Set-ReplicationKey -Cluster $cluster
        Wait-Condition -Because "suspended node $x keeps applying" -Condition { (Get-ReplicationNode -Cluster $cluster -Id $x).LagEntries -eq 0 }
        (Get-ReplicationNode -Cluster $cluster -Id $x).Suspended | Should -BeTrue
        (Get-ReplicationEvent -Cluster $cluster -Node $x -Type NodeSuspended -Last 1).Message | Should -Match 'suspended for maintenance'

        (Resume-ReplicationNode -Cluster $cluster -Id $x).Suspended | Should -BeFalse
        (Invoke-ReplicationFailover -Cluster $cluster -Shard 0 -TargetNode $x).NewLeader | Should -Be $x
        { Suspend-ReplicationNode -Cluster $cluster -Id 9 -ErrorAction Stop } |
            Should -Throw -ErrorId 'NodeNotFound,Replication.PowerShell.Commands.SuspendReplicationNodeCommand'
    }
}
