# Restart-ReplicationNode (a rolling-restart step) on an embedded cluster: every node restarted one by one while a thread
# job writes, and every acknowledged write is still there afterwards; refused (QuorumAtRisk) when a shard would lose its
# running quorum; NotSupportedRemotely for a cluster whose nodes run in other processes (Shapes.ps1, shape Process).
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    . (Join-Path $PSScriptRoot 'Shapes.ps1')
    Import-Module $Manifest -Force
}

Describe 'Restart-ReplicationNode (Embedded)' {
    BeforeAll {
        $script:cluster = New-TestCluster -Shape Embedded -Name 'restart-embedded' -Root $TestDrive
        Wait-ReplicationLeader -Cluster $script:cluster -Timeout 60 | Out-Null
    }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'restarts every node one by one under a stream of writes and loses no acknowledged write' {
        # The module's cluster registry is per process: the thread job writes to the same cluster by name.
        $stop = [System.Threading.ManualResetEventSlim]::new($false)
        $job = Start-ThreadJob -ArgumentList $Manifest, $cluster.Name, $stop -ScriptBlock {
            param($manifest, $name, $stop)
            Import-Module $manifest
            $acknowledged = [System.Collections.Generic.List[string]]::new()
            for ($i = 0; $i -lt 5000 -and -not $stop.IsSet; $i++) {
                try {
                    Set-ReplicationKey -Cluster $name -Key "rr:$i" -Value "v$i" -Timeout 20 -ErrorAction Stop
                    $acknowledged.Add("rr:$i")
                }
                catch { } # not acknowledged: its outcome is not asserted on
            }
            $acknowledged # one string per acknowledged key
        }
        try {
            Wait-Condition -Because 'the writer has started' -Condition { @(Get-ReplicationKey -Cluster $cluster -Prefix 'rr:').Count -ge 10 }
            foreach ($id in 1, 2, 3) {
                $node = Restart-ReplicationNode -Cluster $cluster -Id $id -Timeout 120 -Confirm:$false
                $node | Should -BeOfType ([Replication.ReplicationNode])
                $node.Id | Should -Be $id
                $node.State | Should -Be 'Running'
                $node.Suspended | Should -BeFalse
                # Each node is back with a quorum's worth of replicas before the next stops: the next restart's own check would refuse otherwise.
            }
            $before = @(Get-ReplicationKey -Cluster $cluster -Prefix 'rr:').Count
            Wait-Condition -Because 'writes go on after the rolling restart' -Condition { @(Get-ReplicationKey -Cluster $cluster -Prefix 'rr:').Count -ge $before + 10 }
        }
        finally {
            $stop.Set()
            # Wait, receive, then remove: Receive-Job -Wait -AutoRemoveJob on a thread job failed once with "Job repository does
            # not contain an item with ID ..." (it removed the finished job twice), which hid the test's own outcome.
            $acknowledged = @(Wait-Job -Job $job | Receive-Job)
            Remove-Job -Job $job -Force
        }
        $acknowledged.Count | Should -BeGreaterThan 20
        $stored = @{}
        Get-ReplicationKey -Cluster $cluster -Prefix 'rr:' | ForEach-Object { $stored[$_.Key] = $_.Value }
        $missing = @($acknowledged | Where-Object { -not $stored.ContainsKey($_) })
        $missing | Should -BeNullOrEmpty
        Test-ReplicationConsistency -Cluster $cluster | ForEach-Object { $_.Status | Should -Be 'Consistent' }
        # Each restart was a clean stop followed by a start, recorded by the node.
        foreach ($id in 1, 2, 3) {
            @(Get-ReplicationEvent -Cluster $cluster -Type NodeStopped -Node $id) | Should -Not -BeNullOrEmpty
        }
    }

    It 'keeps a node suspended that was suspended before the restart' {
        Suspend-ReplicationNode -Cluster $cluster -Id 2 -Drain -Confirm:$false | Out-Null
        try {
            $node = Restart-ReplicationNode -Cluster $cluster -Id 2 -Timeout 120 -Confirm:$false
            $node.State | Should -Be 'Running'
            $node.Suspended | Should -BeTrue
        }
        finally { Resume-ReplicationNode -Cluster $cluster -Id 2 -Confirm:$false | Out-Null }
        (Get-ReplicationNode -Cluster $cluster -Id 2).Suspended | Should -BeFalse
    }

    It 'refuses (QuorumAtRisk) when a shard the node votes in would be left without a running quorum, and changes nothing' {
        Stop-ReplicationNode -Cluster $cluster -Id 3 -Confirm:$false | Out-Null
        try {
            Restart-ReplicationNode -Cluster $cluster -Id 1 -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable err | Out-Null
            $err[0].FullyQualifiedErrorId | Should -Be 'QuorumAtRisk,Replication.PowerShell.Commands.RestartReplicationNodeCommand'
            $err[0].Exception.Message | Should -BeLike '*node 3 is stopped; start it first*' -Because 'the refusal names its real reason'
            $one = Get-ReplicationNode -Cluster $cluster -Id 1
            $one.State | Should -Be 'Running'
            $one.Suspended | Should -BeFalse
            Restart-ReplicationNode -Cluster $cluster -Id 3 -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable notRunning | Out-Null
            $notRunning[0].FullyQualifiedErrorId | Should -Be 'NodeNotRunning,Replication.PowerShell.Commands.RestartReplicationNodeCommand'
        }
        finally { Start-ReplicationNode -Cluster $cluster -Id 3 | Out-Null }
    }
}

Describe 'Restart-ReplicationNode (Process)' {
    BeforeAll { $script:cluster = New-TestCluster -Shape Process -Name 'restart-process' -Root $TestDrive }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'answers NotSupportedRemotely with how to restart a node process, and stops nothing' {
        Restart-ReplicationNode -Cluster $cluster -Id 1 -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable err | Out-Null
        $err[0].FullyQualifiedErrorId | Should -Be 'NotSupportedRemotely,Replication.PowerShell.Commands.RestartReplicationNodeCommand'
        $err[0].Exception.Message | Should -BeLike '*Start-ReplicationNode -Path*-Listen*'
        @(Get-ReplicationNode -Cluster $cluster | Where-Object State -EQ 'Running') | Should -HaveCount 3
    }
}
