# The consistent-hash ring in both shapes (Shapes.ps1): a cluster grows to four nodes and shrinks back to three under
# writes, after a split; every acknowledged write stays readable, every shard keeps three voters, the replicas agree,
# and leaderships spread over the nodes; a split returns both halves with a leader. Embedded only: the refusals and the hand-placed
# moves, which are the same engine calls.
BeforeDiscovery {
    $script:Shapes = @(@{ Shape = 'Embedded' }, @{ Shape = 'Process' })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    . (Join-Path $PSScriptRoot 'Shapes.ps1')
    Import-Module $Manifest -Force

    function Assert-LeadersBalanced {
        param($Cluster, [int] $Nodes, [int] $Shards)
        $floor = [Math]::Floor($Shards / $Nodes); $ceiling = [Math]::Ceiling($Shards / $Nodes)
        Wait-Condition -Timeout '00:00:45' -Because "every node leads $floor or $ceiling of $Shards shards" -Condition {
            $ring = @(Get-ReplicationRing -Cluster $Cluster)
            $ring.Count -eq $Nodes -and -not ($ring | Where-Object { $_.ShardsLed -lt $floor -or $_.ShardsLed -gt $ceiling })
        }
    }
}

Describe 'The ring grows and shrinks (<Shape>)' -ForEach $Shapes {
    BeforeAll {
        $script:cluster = New-TestCluster -Shape $Shape -Name "ring-$($Shape.ToLower())" -Root $TestDrive -ShardCount 4
    }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'adds a node, moves its share to it under writes, removes another, and loses nothing' {
        $keys = 1..40 | ForEach-Object { "ring:$_" }
        $keys | ForEach-Object { [pscustomobject]@{ Key = $_; Value = "v-$_" } } | Set-ReplicationKey -Cluster $cluster
        # A split first: the moves below then copy a shard that split, and a node that joins it replays the split (stop 32).
        Split-ReplicationShard -Cluster $cluster -Id 0 -Timeout 60 | Should -HaveCount 2
        Assert-LeadersBalanced -Cluster $cluster -Nodes 3 -Shards 5

        if ($Shape -eq 'Embedded') {
            $added = Add-ReplicationNode -Cluster $cluster -Timeout 120
        }
        else {
            $seed = (Get-ReplicationNode -Cluster $cluster | Select-Object -First 1).Endpoint
            $entry = $script:NodeProcesses[$cluster.Name]
            $node = Start-NodeProcess -Folder (Join-Path $entry.Root 'node4') -Port (Get-FreePort) -Join $seed
            $entry.Nodes[$node.Id] = $node
            $added = Add-ReplicationNode -Cluster $cluster -Endpoint "127.0.0.1:$($node.Port)" -Timeout 120
        }
        $added | Should -BeOfType ([Replication.ReplicationNode])
        $added.Id | Should -Be 4
        41..60 | ForEach-Object { Set-ReplicationKey -Cluster $cluster -Key "ring:$_" -Value "v-ring:$_" }
        $ring = @(Get-ReplicationRing -Cluster $cluster)
        $ring | Should -HaveCount 4
        $ring[0] | Should -BeOfType ([Replication.ReplicationRingEntry])
        ($ring | Where-Object Node -EQ 4).ShardsHeld | Should -BeGreaterThan 0
        ($ring | Measure-Object -Property Share -Sum).Sum | Should -BeGreaterThan 0.999
        Get-ReplicationShard -Cluster $cluster | ForEach-Object { $_.Voters | Should -HaveCount 3 }
        @(Invoke-ReplicationRebalance -Cluster $cluster -WhatIf) | Should -HaveCount 0
        Assert-LeadersBalanced -Cluster $cluster -Nodes 4 -Shards 5

        Remove-ReplicationNode -Cluster $cluster -Id 1 -Timeout 120 -Confirm:$false
        Wait-Condition -Timeout '00:01:00' -Because 'node 1 is gone from the cluster' -Condition {
            -not (Get-ReplicationNode -Cluster $cluster | Where-Object Id -EQ 1)
        }
        Get-ReplicationShard -Cluster $cluster | ForEach-Object {
            $_.Voters | Should -HaveCount 3
            $_.Voters | Should -Not -Contain 1
        }
        $read = @(Get-ReplicationKey -Cluster $cluster -Prefix 'ring:')
        $read | Should -HaveCount 60
        $read | ForEach-Object { $_.Value | Should -Be "v-$($_.Key)" }
        Test-ReplicationConsistency -Cluster $cluster | ForEach-Object { $_.Consistent | Should -BeTrue }
        Assert-LeadersBalanced -Cluster $cluster -Nodes 3 -Shards 5
        if ($Shape -eq 'Process') {
            $removed = $script:NodeProcesses[$cluster.Name].Nodes[1].Process
            Wait-Condition -Because 'the removed node process exits by itself' -Condition { $removed.HasExited }
        }
        # The moves are in the history of the nodes that remain (the removed node's own history left with it).
        Get-ReplicationEvent -Cluster $cluster -Type MembershipChanged | Where-Object Message -Match 'node 4|4' | Should -Not -BeNullOrEmpty
    }

    It 'splits a shard and returns both halves, each with a leader' {
        $before = @(Get-ReplicationShard -Cluster $cluster).Count
        $halves = @(Split-ReplicationShard -Cluster $cluster -Id 0 -Timeout 60)
        $halves | Should -HaveCount 2
        $halves[0].HashEnd + 1 | Should -Be $halves[1].HashStart
        # Returned once both halves lead somewhere (the new half's group elects its first leader after the split applies).
        $halves | ForEach-Object { $_.Leader | Should -Not -Be 0 -Because "shard $($_.Id) was returned by the split" }
        @(Get-ReplicationShard -Cluster $cluster) | Should -HaveCount ($before + 1)
        $read = @(Get-ReplicationKey -Cluster $cluster -Prefix 'ring:')
        $read | Should -HaveCount 60
    }

    It 'warns when nothing listens on the endpoint it is to follow, then times out with EndpointUnreachable' {
        # -Endpoint follows a node process, it does not start one: a mistyped port used to wait the whole -Timeout in silence.
        $port = Get-FreePort
        $nodes = @(Get-ReplicationNode -Cluster $cluster).Count
        $caught = $null
        try { Add-ReplicationNode -Cluster $cluster -Endpoint "127.0.0.1:$port" -Timeout 8 -WarningVariable warned -WarningAction SilentlyContinue }
        catch { $caught = $_ }
        $warned | Should -HaveCount 1
        "$($warned[0])" | Should -Match "Nothing accepts connections on 127\.0\.0\.1:$port"
        $caught.FullyQualifiedErrorId | Should -Be 'EndpointUnreachable,Replication.PowerShell.Commands.AddReplicationNodeCommand'
        @(Get-ReplicationNode -Cluster $cluster) | Should -HaveCount $nodes
    }
}

Describe 'Ring operations on an embedded cluster' {
    BeforeAll {
        $script:cluster = New-TestCluster -Shape Embedded -Name 'ring-ops' -Root $TestDrive -ShardCount 4
    }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'refuses to remove a node the others cannot replace, and changes nothing' {
        Remove-ReplicationNode -Cluster $cluster -Id 2 -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -Be 'ReplicationFactorAtRisk,Replication.PowerShell.Commands.RemoveReplicationNodeCommand'
        Get-ReplicationNode -Cluster $cluster | Should -HaveCount 3
        @(Get-ReplicationRing -Cluster $cluster | Where-Object State -NE 'Running') | Should -HaveCount 0
    }

    It 'moves a replica by hand, keeps it there, and unpins' {
        Add-ReplicationNode -Cluster $cluster -Zone 'b' -Timeout 120 | Out-Null
        $shard = Get-ReplicationShard -Cluster $cluster | Select-Object -First 1
        $from = @($shard.Voters | Where-Object { $_ -ne 4 })[0]
        $to = @(1, 2, 3 | Where-Object { $shard.Voters -notcontains $_ })[0]
        $moved = Move-ReplicationShard -Cluster $cluster -Shard $shard.Id -ToNode $to -FromNode $from -Timeout 120
        $moved.Voters | Should -Contain $to
        $moved.Voters | Should -Not -Contain $from
        (Get-ReplicationRing -Cluster $cluster | Where-Object Node -EQ 4).Zone | Should -Be 'b'
        Move-ReplicationShard -Cluster $cluster -Shard $shard.Id -ToNode $from -FromNode $from -ErrorAction SilentlyContinue -ErrorVariable bad | Out-Null
        $bad[0].FullyQualifiedErrorId | Should -Match '^InvalidClusterOptions,'
        Move-ReplicationShard -Cluster $cluster -Shard $shard.Id -Unpin -Timeout 120 | Should -BeOfType ([Replication.ReplicationShard])
    }

    It 'splits a shard in two with its keys' {
        1..30 | ForEach-Object { Set-ReplicationKey -Cluster $cluster -Key "split:$_" -Value "$_" }
        $halves = @(Split-ReplicationShard -Cluster $cluster -Id 0)
        $halves | Should -HaveCount 2
        $halves[0].Id | Should -Be 0
        $halves[0].HashEnd + 1 | Should -Be $halves[1].HashStart
        # Returned once both halves lead somewhere: the new half's first write need not wait for its election.
        $halves | ForEach-Object { $_.Leader | Should -Not -Be 0 -Because "shard $($_.Id) was returned by the split" }
        @(Get-ReplicationKey -Cluster $cluster -Prefix 'split:') | Should -HaveCount 30
        Get-ReplicationShard -Cluster $cluster | Should -HaveCount 5
    }
}

Describe 'Ring settings when a cluster is founded' {
    # -SplitKeys, -SplitWriteRate, -MaxConcurrentMoves and -TokensPerNode are declared once (RingSettingsParameters) and
    # offered by New-ReplicationCluster and by Start-ReplicationNode -Path: both must bind them, validate them and found
    # the cluster with them, and Start-ReplicationNode -Id (restarting an embedded node) must not take them.
    AfterAll { Remove-AllReplicationClusters }

    It 'founds an embedded cluster with the given tokens per node' {
        $c = New-ReplicationCluster -Name 'ring-settings' -Path (Join-Path $TestDrive 'ring-settings') -NodeCount 1 -ReplicationFactor 1 -ShardCount 1 `
            -TokensPerNode 16 -MaxConcurrentMoves 5 -SplitKeys 500000
        try {
            Wait-Condition -Timeout '00:01:00' -Because 'the new cluster has a ring' -Condition { @(Get-ReplicationRing -Cluster $c).Count -eq 1 }
            (Get-ReplicationRing -Cluster $c).Tokens | Should -Be 16
        }
        finally { Remove-ReplicationCluster -Cluster $c -DeleteData -Confirm:$false }
    }

    It 'founds a node process cluster (Start-ReplicationNode -Path) with the given tokens per node' {
        $port = Get-FreePort
        $secret = ConvertTo-SecureString 'ring-settings-secret' -AsPlainText -Force
        Start-ReplicationNode -Path (Join-Path $TestDrive 'ring-settings-node') -Listen "127.0.0.1:$port" -ClusterSecret $secret -Name 'ring-settings-node' `
            -ShardCount 1 -ReplicationFactor 1 -TokensPerNode 24 -SplitWriteRate 1000 | Out-Null
        try {
            # The ring is known once the founding node's metadata group has elected itself and applied the founding entry.
            Wait-Condition -Timeout '00:01:00' -Because 'the new cluster has a ring' -Condition { @(Get-ReplicationRing -Cluster 'ring-settings-node').Count -eq 1 }
            (Get-ReplicationRing -Cluster 'ring-settings-node').Tokens | Should -Be 24
        }
        finally { Remove-ReplicationCluster -Cluster 'ring-settings-node' -DeleteData -Confirm:$false }
    }

    It 'refuses values outside the ranges at binding, and the settings with Start-ReplicationNode -Id' {
        { New-ReplicationCluster -Name 'ring-range' -Path (Join-Path $TestDrive 'ring-range') -TokensPerNode 0 } |
            Should -Throw -ErrorId 'ParameterArgumentValidationError,Replication.PowerShell.Commands.NewReplicationClusterCommand'
        { Start-ReplicationNode -Path (Join-Path $TestDrive 'ring-range-node') -Listen 127.0.0.1:1 -MaxConcurrentMoves 65 } |
            Should -Throw -ErrorId 'ParameterArgumentValidationError,Replication.PowerShell.Commands.StartReplicationNodeCommand'
        { Start-ReplicationNode -Id 1 -SplitKeys 10 } |
            Should -Throw -ErrorId 'ParameterNotInParameterSet,Replication.PowerShell.Commands.StartReplicationNodeCommand'
    }
}
