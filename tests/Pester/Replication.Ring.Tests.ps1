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

    It 'adds nothing and waits for nothing with -WhatIf' {
        $nodes = @(Get-ReplicationNode -Cluster $cluster).Count
        if ($Shape -eq 'Embedded') { $out = Add-ReplicationNode -Cluster $cluster -Zone 'z9' -WhatIf }
        else {
            # Nothing listens there: without -WhatIf this waits, warns after 5 s and times out (the next test).
            $out = Add-ReplicationNode -Cluster $cluster -Endpoint "127.0.0.1:$(Get-FreePort)" -Timeout 8 -WhatIf -WarningVariable warned -ErrorAction Stop
            $warned | Should -BeNullOrEmpty
        }
        $out | Should -BeNullOrEmpty
        @(Get-ReplicationNode -Cluster $cluster) | Should -HaveCount $nodes
        @(Get-ReplicationNode -Cluster $cluster | Where-Object Zone -EQ 'z9') | Should -HaveCount 0
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

Describe 'A file per shard (<Shape>)' -ForEach $Shapes {
    # -StoreLayout FilePerShard: each node keeps a SQLite file per shard, and a replica that moves is copied as that file
    # (README, "The ring", stop 33). The same grow, split and shrink as above, in that layout, with its files checked.
    BeforeAll {
        $script:cluster = New-TestCluster -Shape $Shape -Name "files-$($Shape.ToLower())" -Root $TestDrive -ShardCount 3 -StoreLayout FilePerShard
        $script:root = Join-Path $TestDrive "files-$($Shape.ToLower())"
        function Get-StateFiles([int] $Id) {
            # The node folders: node-N for an embedded cluster, nodeN for node processes (Shapes.ps1).
            $folder = Get-ChildItem $script:root -Directory | Where-Object Name -Match "^node-?$Id$" | Select-Object -First 1
            [pscustomobject]@{
                StateDb = Test-Path (Join-Path $folder.FullName 'state.db')
                Shards  = @(Get-ChildItem (Join-Path $folder.FullName 'shards') -Filter 'shard-*.db' -ErrorAction SilentlyContinue).Name
            }
        }
    }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'keeps a file per shard on every node, copies replicas to a node that joins, and loses nothing when another leaves' {
        $keys = 1..60 | ForEach-Object { "files:$_" }
        $keys | ForEach-Object { [pscustomobject]@{ Key = $_; Value = ('v' * 200) + $_ } } | Set-ReplicationKey -Cluster $cluster
        $halves = @(Split-ReplicationShard -Cluster $cluster -Id 0 -Timeout 60)
        $halves | Should -HaveCount 2
        foreach ($id in 1..3) {
            $files = Get-StateFiles $id
            $files.StateDb | Should -BeFalse
            foreach ($half in $halves) { $files.Shards | Should -Contain "shard-$($half.Id).db" } # the new half founded in a file of its own
        }

        if ($Shape -eq 'Embedded') {
            $added = Add-ReplicationNode -Cluster $cluster -Timeout 120 # takes the cluster's layout
        }
        else {
            $seed = (Get-ReplicationNode -Cluster $cluster | Select-Object -First 1).Endpoint
            $entry = $script:NodeProcesses[$cluster.Name]
            $node = Start-NodeProcess -Folder (Join-Path $entry.Root 'node4') -Port (Get-FreePort) -Join $seed -Extra @('--store-layout', 'FilePerShard')
            $entry.Nodes[$node.Id] = $node
            $added = Add-ReplicationNode -Cluster $cluster -Endpoint "127.0.0.1:$($node.Port)" -Timeout 120
        }
        $added.Id | Should -Be 4
        $held = @(Get-ReplicationShard -Cluster $cluster | Where-Object { $_.Voters -contains 4 }).Id
        $held | Should -Not -BeNullOrEmpty
        $files = Get-StateFiles 4
        $files.StateDb | Should -BeFalse
        foreach ($shard in $held) { $files.Shards | Should -Contain "shard-$shard.db" }

        Remove-ReplicationNode -Cluster $cluster -Id 1 -Timeout 120 -Confirm:$false
        Get-ReplicationShard -Cluster $cluster | ForEach-Object { $_.Voters | Should -HaveCount 3 }
        $read = @(Get-ReplicationKey -Cluster $cluster -Prefix 'files:')
        $read | Should -HaveCount 60
        $read | ForEach-Object { $_.Value | Should -Be (('v' * 200) + $_.Key) }
        Test-ReplicationConsistency -Cluster $cluster | ForEach-Object { $_.Consistent | Should -BeTrue }
        # A replica that moved away is its file deleted: node 4 holds files of its shards only (the metadata group's too).
        $now = @(Get-ReplicationShard -Cluster $cluster | Where-Object { $_.Voters -contains 4 }).Id
        Wait-Condition -Because 'node 4 holds a file of each of its shards and of no other data shard' -Condition {
            $names = @((Get-StateFiles 4).Shards | Where-Object { $_ -ne 'shard-1000000.db' })
            $names.Count -eq $now.Count -and -not ($now | Where-Object { $names -notcontains "shard-$_.db" })
        }
        # The storage check reads every shard file: each node passes, naming them.
        $storage = @(Test-ReplicationCluster -Cluster $cluster -Storage | Where-Object Check -EQ 'Storage')
        $storage | Should -HaveCount 3
        $storage | ForEach-Object {
            $_.Result | Should -Be 'Pass'
            $_.Detail | Should -Match 'raft\.db \([0-9.]+ MiB, [0-9.]+ s\), shard-\d+\.db'
            $_.Detail | Should -Not -Match 'state\.db'
        }
    }

    It 'shows each node''s layout, and warns when a node joins that keeps another' {
        Wait-Condition -Because 'every running node reports a file per shard' -Condition {
            $running = @(Get-ReplicationNode -Cluster $cluster | Where-Object State -EQ 'Running')
            $running.Count -ge 3 -and -not ($running | Where-Object { "$($_.StoreLayout)" -ne 'FilePerShard' })
        }
        (Get-ReplicationNode -Cluster $cluster | Select-Object -First 1 | ConvertTo-Json | ConvertFrom-Json).StoreLayout | Should -Be 'FilePerShard'
        (Test-ReplicationCluster -Cluster $cluster | Where-Object Check -EQ 'StoreLayout').Result | Should -Be 'Pass'
        if ($Shape -eq 'Embedded') { return } # an embedded cluster's nodes take its layout (Add-ReplicationNode above): never mixed

        # A node process started without --store-layout keeps one state.db: it joins and serves, and the check warns.
        $seed = (Get-ReplicationNode -Cluster $cluster | Where-Object State -EQ 'Running' | Select-Object -First 1).Endpoint
        $entry = $script:NodeProcesses[$cluster.Name]
        $node = Start-NodeProcess -Folder (Join-Path $entry.Root 'node5') -Port (Get-FreePort) -Join $seed
        $entry.Nodes[$node.Id] = $node
        $added = Add-ReplicationNode -Cluster $cluster -Endpoint "127.0.0.1:$($node.Port)" -Timeout 120
        "$((Get-ReplicationNode -Cluster $cluster -Id $added.Id).StoreLayout)" | Should -Be 'FilePerNode'
        $check = Test-ReplicationCluster -Cluster $cluster | Where-Object Check -EQ 'StoreLayout'
        $check.Result | Should -Be 'Warning'
        $check.Detail | Should -Match "$($added.Id):FilePerNode"
        $check.Detail | Should -Match 'copied row by row'
        # Replicas moved onto it from files are copied as rows, and nothing is lost.
        $read = @(Get-ReplicationKey -Cluster $cluster -Prefix 'files:')
        $read | Should -HaveCount 60
        Test-ReplicationConsistency -Cluster $cluster | ForEach-Object { $_.Consistent | Should -BeTrue }
    }
}

Describe 'The store layout when a cluster is founded or reopened' {
    AfterAll { Remove-AllReplicationClusters }

    It 'founds a node (Start-ReplicationNode -Path) with a file per shard' {
        $port = Get-FreePort
        $secret = ConvertTo-SecureString 'layout-secret-123' -AsPlainText -Force
        $path = Join-Path $TestDrive 'layout-node'
        Start-ReplicationNode -Path $path -Listen "127.0.0.1:$port" -ClusterSecret $secret -Name 'layout-node' -ShardCount 2 -ReplicationFactor 1 `
            -StoreLayout FilePerShard | Out-Null
        try {
            Wait-ReplicationLeader -Cluster 'layout-node' -Timeout 60 | Out-Null
            Set-ReplicationKey -Cluster 'layout-node' -Key 'k' -Value 'v' | Out-Null
            Test-Path (Join-Path $path 'state.db') | Should -BeFalse
            @(Get-ChildItem (Join-Path $path 'shards') -Filter 'shard-*.db').Count | Should -BeGreaterOrEqual 2 # a data shard and the metadata group
        }
        finally { Remove-ReplicationCluster -Cluster 'layout-node' -DeleteData -Confirm:$false }
    }

    It 'reopens an embedded cluster in the layout it has and refuses another' {
        $path = Join-Path $TestDrive 'layout-reopen'
        $c = New-ReplicationCluster -Name 'layout-reopen' -Path $path -NodeCount 1 -ReplicationFactor 1 -ShardCount 1 -StoreLayout FilePerShard
        Wait-ReplicationLeader -Cluster $c -Timeout 60 | Out-Null
        Set-ReplicationKey -Cluster $c -Key 'k' -Value 'v' | Out-Null
        Remove-ReplicationCluster -Cluster $c -Confirm:$false # keeps the data
        { New-ReplicationCluster -Name 'layout-reopen' -Path $path -StoreLayout FilePerNode } |
            Should -Throw -ErrorId 'ClusterPathMismatch,Replication.PowerShell.Commands.NewReplicationClusterCommand'
        $c = New-ReplicationCluster -Name 'layout-reopen' -Path $path
        try {
            (Get-ReplicationKey -Cluster $c -Key 'k').Value | Should -Be 'v'
            Test-Path (Join-Path $path 'node-1/state.db') | Should -BeFalse
        }
        finally { Remove-ReplicationCluster -Cluster $c -DeleteData -Confirm:$false }
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
