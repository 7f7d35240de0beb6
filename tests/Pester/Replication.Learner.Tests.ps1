# Asynchronous replicas in both shapes (Shapes.ps1): a node that joins as a learner (Add-ReplicationNode -Learner for an
# embedded cluster, a node process started with the learner role and followed by Add-ReplicationNode -Endpoint) follows
# every shard, is never placed as a voter, leads nothing, counts toward no quorum (writes go on while it is down), and
# serves stale reads that say who served them and how far behind it was, and refuses them past -MaxLag while it is behind
# (cut off from the voters' Raft traffic by the test's partition hook, Set-TestNodeCutOff).
BeforeDiscovery {
    $script:Shapes = @(@{ Shape = 'Embedded' }, @{ Shape = 'Process' })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    . (Join-Path $PSScriptRoot 'Shapes.ps1')
    Import-Module $Manifest -Force
}

Describe 'A learner node (<Shape>)' -ForEach $Shapes {
    BeforeAll {
        $script:cluster = New-TestCluster -Shape $Shape -Name "learner-$($Shape.ToLower())" -Root $TestDrive -ShardCount 3
        # Set-up data. A leader change while a write waits leaves it OutcomeUnknown, by contract; on this loaded machine one
        # happens without a fault now and then (a node whose loop stalls longer than the election timeout, or whose liveness
        # signals are 270 ms late with the default timing, is taken for dead: seen once at load 14). That is not what this
        # file tests, and the same key and value sent again leave the same data: such writes are sent again, at most twice.
        $rows = @(1..20 | ForEach-Object { [pscustomobject]@{ Key = "before:$_"; Value = "b$_" } })
        for ($try = 1; $rows.Count -gt 0; $try++) {
            $failed = $null
            $rows | Set-ReplicationKey -Cluster $cluster -ErrorAction SilentlyContinue -ErrorVariable failed
            $other = @($failed | Where-Object { $_.FullyQualifiedErrorId -notlike 'OutcomeUnknown,*' })
            if ($other.Count -gt 0) { throw "A set-up write failed: $($other[0].FullyQualifiedErrorId): $($other[0])" }
            $unknown = @($failed | ForEach-Object TargetObject)
            if ($unknown.Count -gt 0 -and $try -ge 3) { throw "Set-up writes still OutcomeUnknown after $try tries: $($unknown -join ', ')" }
            $rows = @($rows | Where-Object Key -In $unknown)
        }
        if ($Shape -eq 'Embedded') {
            $script:added = Add-ReplicationNode -Cluster $cluster -Learner -Timeout 120
        }
        else {
            $seed = (Get-ReplicationNode -Cluster $cluster | Select-Object -First 1).Endpoint
            $entry = $script:NodeProcesses[$cluster.Name]
            $node = Start-NodeProcess -Folder (Join-Path $entry.Root 'node4') -Port (Get-FreePort) -Join $seed -Extra @('--role', 'Learner')
            $entry.Nodes[$node.Id] = $node
            $script:added = Add-ReplicationNode -Cluster $cluster -Endpoint "127.0.0.1:$($node.Port)" -Timeout 120
        }
        $script:learner = $added.Id
        # A session connected to the learner alone: a stale read is served by the node a session asks.
        $script:viaLearner = Connect-ReplicationCluster -Endpoint $added.Endpoint -ClusterSecret $ShapeSecret -Name "learner-$($Shape.ToLower())-via-$learner"
    }
    AfterAll {
        Disconnect-ReplicationCluster -Cluster $script:viaLearner
        Remove-TestCluster -Cluster $script:cluster
    }

    It 'joins as a learner of every shard: never a voter, no tokens, leads nothing' {
        $added | Should -BeOfType ([Replication.ReplicationNode])
        $added.Role | Should -Be 'Learner'
        (Get-ReplicationNode -Cluster $cluster -Id $learner).Role | Should -Be 'Learner'
        Get-ReplicationNode -Cluster $cluster | Where-Object Id -NE $learner | ForEach-Object { $_.Role | Should -Be 'Voter' }
        # The ring's ShardsHeld is counted from the memberships the shards' leaders last reported to the node answering it,
        # which can trail the shard status another node answered (seen once in a full suite, Process shape: 2 held while
        # every shard listed it as a learner).
        Wait-Condition -Timeout '00:01:00' -Because "node $learner is a learner of every shard and reports holding all three" -Condition {
            $shards = @(Get-ReplicationShard -Cluster $cluster)
            $shards.Count -eq 3 -and -not ($shards | Where-Object { $_.Learners -notcontains $learner -or $_.Voters.Count -ne 3 }) -and
                (Get-ReplicationRing -Cluster $cluster | Where-Object Node -EQ $learner).ShardsHeld -eq 3
        }
        Get-ReplicationShard -Cluster $cluster | ForEach-Object {
            $_.Voters | Should -Not -Contain $learner
            $_.Placement | Should -Not -Contain $learner
            $_.Leader | Should -Not -Be $learner
        }
        $entry = Get-ReplicationRing -Cluster $cluster | Where-Object Node -EQ $learner
        $entry.Learner | Should -BeTrue
        $entry.Tokens | Should -Be 0
        $entry.Share | Should -Be 0
        $entry.ShardsHeld | Should -Be 3
        $entry.ShardsPlaced | Should -Be 0
        $entry.ShardsLed | Should -Be 0
        # The ring never placed a voter on it, not even between its join and its being marked a learner.
        Get-ReplicationEvent -Cluster $cluster -Type ShardPlaced | ForEach-Object {
            $placed = [regex]::Match($_.Message, 'on nodes ([0-9, ]+) \(')
            $placed.Success | Should -BeTrue -Because $_.Message
            ($placed.Groups[1].Value -split ', ' | ForEach-Object { [int]$_ }) | Should -Not -Contain $learner
        }
        @(Invoke-ReplicationRebalance -Cluster $cluster -WhatIf) | Should -HaveCount 0
    }

    It 'serves stale reads from its own copy, saying it served them and that it was caught up' {
        Set-ReplicationKey -Cluster $cluster -Key 'async:1' -Value 'a1'
        Wait-Condition -Because "learner $learner applied every write" -Condition {
            $script:caughtUp = Get-ReplicationNode -Cluster $cluster -Id $learner
            $caughtUp.State -eq 'Running' -and $caughtUp.ShardsHosted -eq 3 -and $caughtUp.LagEntries -eq 0 -and
                (Get-ReplicationKey -Cluster $viaLearner -Key 'async:1' -Consistency Stale -ErrorAction SilentlyContinue).Value -eq 'a1'
        }
        # Caught up (0 entries) means 0 seconds behind, in the same report. A later report may catch the metadata group one
        # entry behind for a moment (its own traffic: placement, balancing), so the two are read from one object.
        $caughtUp.LagSeconds | Should -Be 0
        $read = Get-ReplicationKey -Cluster $viaLearner -Key 'async:1' -Consistency Stale -MaxLag 0
        $read.Value | Should -Be 'a1'
        $read.ReadFrom | Should -Be $learner
        $read.LagEntries | Should -Be 0
        @(Get-ReplicationKey -Cluster $viaLearner -Prefix 'before:' -Consistency Stale) | Should -HaveCount 20
        $lag = Test-ReplicationCluster -Cluster $cluster | Where-Object { $_.Check -eq 'ReplicaLag' -and $_.Target -eq "node $learner" }
        $lag.Result | Should -Be 'Pass'
        $lag.Detail | Should -Match '^0 entries and 0\.0 s behind'
        $lag.Detail | Should -Match 'learner'
    }

    It 'shows its lag while it is behind, refuses a stale read past -MaxLag, and answers again once caught up' {
        $voters = @(Get-ReplicationNode -Cluster $cluster | Where-Object Id -NE $learner | ForEach-Object Id)
        Set-TestNodeCutOff -Cluster $cluster -Id $learner -From $voters
        try {
            1..10 | ForEach-Object { Set-ReplicationKey -Cluster $cluster -Key "behind:$_" -Value "x$_" }
            # Its peers' status reports tell it the commit indexes it has not reached: ten writes, ten entries behind at least.
            Wait-Condition -Because "learner $learner knows it is behind by the ten writes" -Condition { (Get-ReplicationNode -Cluster $cluster -Id $learner).LagEntries -ge 10 }
            (Get-ReplicationShard -Cluster $cluster | Measure-Object -Property LagEntries -Maximum).Maximum | Should -BeGreaterThan 0

            Get-ReplicationKey -Cluster $viaLearner -Key 'behind:1' -Consistency Stale -MaxLag 0 -ErrorAction SilentlyContinue -ErrorVariable tooStale | Should -BeNullOrEmpty
            $tooStale | Should -HaveCount 1
            $tooStale[0].FullyQualifiedErrorId | Should -Be 'ReplicaTooStale,Replication.PowerShell.Commands.GetReplicationKeyCommand'
            $tooStale[0].TargetObject | Should -Be 'behind:1'
            $tooStale[0].ErrorDetails.RecommendedAction | Should -Match 'Retry later, allow more lag \(-MaxLag\), or read from the leader'
            # With a looser bound it answers from its own copy, where the key is not yet.
            Get-ReplicationKey -Cluster $viaLearner -Key 'behind:1' -Consistency Stale -MaxLag 100000 -ErrorAction SilentlyContinue -ErrorVariable absent | Should -BeNullOrEmpty
            $absent[0].FullyQualifiedErrorId | Should -BeLike 'KeyNotFound,*'
            # A linearizable read through the same session is the leader's, never limited by -MaxLag.
            (Get-ReplicationKey -Cluster $viaLearner -Key 'behind:1' -MaxLag 0).Value | Should -Be 'x1'
        }
        finally { Set-TestNodeCutOff -Cluster $cluster -Id $learner -From @() }
        Wait-Condition -Because "learner $learner caught up after the partition healed (lag 0, its stale reads answer)" -Condition {
            (Get-ReplicationNode -Cluster $cluster -Id $learner).LagEntries -eq 0 -and
                (Get-ReplicationKey -Cluster $viaLearner -Key 'behind:10' -Consistency Stale -MaxLag 0 -ErrorAction SilentlyContinue).Value -eq 'x10'
        }
        @(Get-ReplicationKey -Cluster $viaLearner -Prefix 'behind:' -Consistency Stale) | Should -HaveCount 10
    }

    It 'counts toward no quorum: writes go on with it down, and it catches up when it is back' {
        Stop-TestNodeHard -Cluster $cluster -Id $learner
        Wait-Condition -Because "node $learner is seen down" -Condition { (Get-ReplicationNode -Cluster $cluster -Id $learner).State -ne 'Running' }
        1..30 | ForEach-Object { Set-ReplicationKey -Cluster $cluster -Key "while-down:$_" -Value "d$_" -Timeout 20 }
        $health = @(Test-ReplicationCluster -Cluster $cluster)
        $health | Where-Object Check -EQ 'Quorum' | ForEach-Object { $_.Result | Should -Be 'Pass' }
        ($health | Where-Object { $_.Check -eq 'NodeReachable' -and $_.Target -eq "node $learner" }).Result | Should -Be 'Fail'

        Start-TestNode -Cluster $cluster -Id $learner | Out-Null
        # The session to the learner failed over to a voter while it was down: connect to the learner again.
        Disconnect-ReplicationCluster -Cluster $viaLearner
        $script:viaLearner = Connect-ReplicationCluster -Endpoint (Get-ReplicationNode -Cluster $cluster -Id $learner).Endpoint -ClusterSecret $ShapeSecret -Name $viaLearner.Name
        Wait-Condition -Timeout '00:01:00' -Because "learner $learner caught up after its restart and serves the last write" -Condition {
            $n = Get-ReplicationNode -Cluster $cluster -Id $learner
            $n.State -eq 'Running' -and $n.LagEntries -eq 0 -and
                (Get-ReplicationKey -Cluster $viaLearner -Key 'while-down:30' -Consistency Stale -MaxLag 0 -ErrorAction SilentlyContinue).Value -eq 'd30'
        }
        $read = Get-ReplicationKey -Cluster $viaLearner -Key 'while-down:30' -Consistency Stale -MaxLag 0
        $read.ReadFrom | Should -Be $learner
        $read.LagEntries | Should -Be 0
        @(Get-ReplicationKey -Cluster $viaLearner -Prefix 'while-down:' -Consistency Stale) | Should -HaveCount 30
        Get-ReplicationShard -Cluster $cluster | ForEach-Object {
            $_.Learners | Should -Contain $learner
            $_.Voters | Should -Not -Contain $learner
        }
        (Get-ReplicationNode -Cluster $cluster -Id $learner).Role | Should -Be 'Learner'
    }
}

Describe 'Learner roles refused or changed' {
    It 'refuses a founding node with the learner role' {
        $secret = ConvertTo-SecureString 'learner-founding' -AsPlainText -Force
        { Start-ReplicationNode -Path (Join-Path $TestDrive 'founding-learner') -Listen "127.0.0.1:$(Get-FreePort)" -ClusterSecret $secret -Role Learner } |
            Should -Throw -ErrorId 'InvalidClusterOptions,Replication.PowerShell.Commands.StartReplicationNodeCommand'
    }
}
