# Cluster lifecycle as an operator sees it: create, list, route by object or name, remove, reopen.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
}

Describe 'New-, Get- and Remove-ReplicationCluster' {
    BeforeAll {
        $cluster = New-ReplicationCluster -Name 'life-a' -Path (Join-Path $TestDrive 'life-a')
    }
    AfterAll {
        Get-ReplicationCluster -Name 'life-*' | Remove-ReplicationCluster -DeleteData -Confirm:$false
    }

    It 'creates a running embedded cluster with the default shape' {
        $cluster | Should -BeOfType ([Replication.ReplicationCluster])
        $cluster.Name | Should -Be 'life-a'
        $cluster.State | Should -Be 'Running'
        $cluster.Mode | Should -Be 'Embedded'
        $cluster.Nodes.Count | Should -Be 3
        $cluster.ShardCount | Should -Be 4
        $cluster.ReplicationFactor | Should -Be 3
        $cluster.Id | Should -Not -Be ([guid]::Empty)
        $cluster.Path | Should -Be (Join-Path $TestDrive 'life-a')
        Wait-ReplicationLeader -Timeout 00:00:30 | Should -HaveCount 4
    }

    It 'refuses a name already used in the session (ClusterNameInUse)' {
        { New-ReplicationCluster -Name 'LIFE-A' -Path (Join-Path $TestDrive 'other') } |
            Should -Throw -ErrorId 'ClusterNameInUse,Replication.PowerShell.Commands.NewReplicationClusterCommand'
    }

    It 'lists clusters by name with wildcards' {
        $b = New-ReplicationCluster -Name 'life-b' -NodeCount 3 -ShardCount 2 -Path (Join-Path $TestDrive 'life-b')
        (Get-ReplicationCluster -Name 'life-*').Name | Should -Be @('life-a', 'life-b')
        (Get-ReplicationCluster 'life-b').Id | Should -Be $b.Id
        Get-ReplicationCluster -Name 'nothing-like-this' -ErrorAction SilentlyContinue -ErrorVariable err | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'ClusterNotFound,Replication.PowerShell.Commands.GetReplicationClusterCommand'
    }

    It 'uses the most recently created cluster when -Cluster is omitted, and a name or object when given' {
        (Get-ReplicationNode | Select-Object -First 1).Cluster | Should -Be 'life-b'
        (Get-ReplicationNode -Cluster 'life-a' | Select-Object -First 1).Cluster | Should -Be 'life-a'
        (Get-ReplicationNode -Cluster $cluster | Select-Object -First 1).Cluster | Should -Be 'life-a'
        { Get-ReplicationNode -Cluster 'no-such-cluster' } |
            Should -Throw -ErrorId 'ClusterNotFound,Replication.PowerShell.Commands.GetReplicationNodeCommand'
    }

    It 'routes a piped node to its own cluster (Get-ReplicationNode | Stop-ReplicationNode -Kill)' {
        Wait-ReplicationLeader -Cluster 'life-a' | Out-Null
        $stopped = Get-ReplicationNode -Cluster 'life-a' -Id 2 | Stop-ReplicationNode -Kill -Confirm:$false
        $stopped.Cluster | Should -Be 'life-a'
        $stopped.State | Should -Be 'Stopped'
        (Get-ReplicationNode -Cluster 'life-b' -Id 2).State | Should -Be 'Running'
        $started = Get-ReplicationNode -Cluster 'life-a' -Id 2 | Start-ReplicationNode
        $started.State | Should -Be 'Running'
    }

    It 'shows shard placement and Raft state, and which shard a key lives on' {
        Wait-ReplicationLeader -Cluster 'life-a' | Out-Null
        # The balancer may be handing a leadership over right after the restart above (a shard then shows leader 0 until
        # the new one reports): read the shards once every one shows a leader, within a bound.
        Wait-Condition -Timeout '00:00:30' -Because 'every shard of life-a shows a leader' -Condition {
            -not (Get-ReplicationShard -Cluster 'life-a' | Where-Object Leader -EQ 0)
        }
        $shards = Get-ReplicationShard -Cluster 'life-a'
        $shards | Should -HaveCount 4
        $shards | ForEach-Object {
            $_ | Should -BeOfType ([Replication.ReplicationShard])
            $_.Voters | Should -HaveCount 3
            $_.Leader | Should -BeIn $_.Voters
        }
        Set-ReplicationKey -Cluster 'life-a' -Key 'where:am-i' -Value 'here'
        $written = Get-ReplicationKey -Cluster 'life-a' -Key 'where:am-i'
        (Get-ReplicationShard -Cluster 'life-a' -Key 'where:am-i').Id | Should -Be $written.Shard
        # Status comes from the shard leader's last report (at most a status period old; leaders move as they balance).
        Wait-Condition -Timeout '00:00:10' -Because 'the shard reports the written key' { (Get-ReplicationShard -Cluster 'life-a' -Id $written.Shard).KeyCount -gt 0 }
        Get-ReplicationShard -Cluster 'life-a' -Id 99 -ErrorAction SilentlyContinue -ErrorVariable err | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'ShardNotFound,Replication.PowerShell.Commands.GetReplicationShardCommand'
    }

    It 'reports an unknown node id as NodeNotFound' {
        Get-ReplicationNode -Id 42 -ErrorAction SilentlyContinue -ErrorVariable err | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'NodeNotFound,Replication.PowerShell.Commands.GetReplicationNodeCommand'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].TargetObject | Should -Be 42
        Stop-ReplicationNode -Id 42 -Kill -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable err2
        $err2[0].FullyQualifiedErrorId | Should -Be 'NodeNotFound,Replication.PowerShell.Commands.StopReplicationNodeCommand'
        Start-ReplicationNode -Id 42 -ErrorAction SilentlyContinue -ErrorVariable err3
        $err3[0].FullyQualifiedErrorId | Should -Be 'NodeNotFound,Replication.PowerShell.Commands.StartReplicationNodeCommand'
    }

    It 'does nothing under -WhatIf' {
        Remove-ReplicationCluster -Cluster 'life-b' -WhatIf
        (Get-ReplicationCluster 'life-b').State | Should -Be 'Running'
    }

    It 'takes the name a cluster was created with as -Name (as New-ReplicationCluster -Name spelled it)' {
        $named = New-ReplicationCluster -Name 'life-named' -NodeCount 1 -ShardCount 1 -ReplicationFactor 1 -Path (Join-Path $TestDrive 'life-named')
        Remove-ReplicationCluster -Name 'life-named' -WhatIf
        $named.State | Should -Be 'Running'
        Remove-ReplicationCluster -Name 'life-named' -Confirm:$false
        $named.State | Should -Be 'Removed'
        Get-ReplicationCluster | Where-Object Name -EQ 'life-named' | Should -BeNullOrEmpty
    }

    It 'removes a piped cluster; the removed object then fails with ClusterNotRunning and the name is free' {
        $b = Get-ReplicationCluster 'life-b'
        $b | Remove-ReplicationCluster -DeleteData -Confirm:$false
        $b.State | Should -Be 'Removed'
        $b.Nodes | Should -BeNullOrEmpty
        Join-Path $TestDrive 'life-b' | Should -Not -Exist
        Get-ReplicationCluster | Where-Object Name -EQ 'life-b' | Should -BeNullOrEmpty
        { Get-ReplicationNode -Cluster $b } |
            Should -Throw -ErrorId 'ClusterNotRunning,Replication.PowerShell.Commands.GetReplicationNodeCommand'
        { Set-ReplicationKey -Cluster $b -Key 'k' -Value 'v' } |
            Should -Throw -ErrorId 'ClusterNotRunning,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        { Get-ReplicationKey -Cluster $b -Prefix 'k' } |
            Should -Throw -ErrorId 'ClusterNotRunning,Replication.PowerShell.Commands.GetReplicationKeyCommand'
        $again = New-ReplicationCluster -Name 'life-b' -Path (Join-Path $TestDrive 'life-b2')
        $again.Id | Should -Not -Be $b.Id
    }
}

Describe 'Data survives Remove-ReplicationCluster without -DeleteData' {
    It 'reopens the same folder with its data and identity' {
        $path = Join-Path $TestDrive 'keep'
        $first = New-ReplicationCluster -Name 'keep-1' -Path $path
        1..50 | ForEach-Object { [pscustomobject]@{ Key = "keep:$_"; Value = "value $_" } } | Set-ReplicationKey -Cluster $first
        Remove-ReplicationCluster -Cluster $first -Confirm:$false
        $path | Should -Exist

        # The folder is the cluster 'keep-1': another name is refused (a different name almost always means a different folder was meant).
        { New-ReplicationCluster -Name 'keep-2' -Path $path } |
            Should -Throw -ErrorId 'ClusterPathMismatch,Replication.PowerShell.Commands.NewReplicationClusterCommand'
        $second = New-ReplicationCluster -Name 'keep-1' -Path $path
        try {
            $second.Id | Should -Be $first.Id
            Wait-ReplicationLeader -Cluster $second -Timeout 00:00:30 | Out-Null
            $keys = Get-ReplicationKey -Cluster $second -Prefix 'keep:'
            $keys | Should -HaveCount 50
            (Get-ReplicationKey -Cluster $second -Key 'keep:7').Value | Should -Be 'value 7'
        }
        finally {
            Remove-ReplicationCluster -Cluster $second -DeleteData -Confirm:$false
        }
        $path | Should -Not -Exist
    }
}

Describe 'A data folder has one owner' {
    It 'refuses a second process opening an in-use cluster folder or node folder; the first keeps running and loses nothing' {
        $clusterPath = Join-Path $TestDrive 'owned'
        $owner = New-ReplicationCluster -Name 'owned' -Path $clusterPath
        $secret = ConvertTo-SecureString 'owned-secret' -AsPlainText -Force
        $port = Get-FreePort
        $nodePath = Join-Path $TestDrive 'owned-node'
        $node = Start-ReplicationNode -Path $nodePath -Listen "127.0.0.1:$port" -ClusterSecret $secret -Name 'owned-node'
        try {
            1..100 | ForEach-Object { [pscustomobject]@{ Key = "owned:$_"; Value = "v$_" } } | Set-ReplicationKey -Cluster $owner
            # A second pwsh process tries both folders while this one holds them.
            $child = @"
Import-Module '$Manifest'
`$ErrorActionPreference = 'Stop'
try { New-ReplicationCluster -Name second -Path '$clusterPath' | Out-Null; 'cluster:opened' } catch { 'cluster:' + `$_.FullyQualifiedErrorId.Split(',')[0] + ':' + `$_.Exception.Message }
`$s = ConvertTo-SecureString 'owned-secret' -AsPlainText -Force
try { Start-ReplicationNode -Path '$nodePath' -Listen 127.0.0.1:1 -ClusterSecret `$s | Out-Null; 'node:opened' } catch { 'node:' + `$_.FullyQualifiedErrorId.Split(',')[0] + ':' + `$_.Exception.Message }
"@
            Push-Location $RepoRoot
            try { $answers = & dotnet pwsh -NoProfile -NonInteractive -Command $child } finally { Pop-Location }
            $cluster = $answers | Where-Object { $_ -like 'cluster:*' }
            $nodeAnswer = $answers | Where-Object { $_ -like 'node:*' }
            $cluster | Should -BeLike 'cluster:DataPathInUse:*'
            $cluster | Should -BeLike "*process $PID*"
            $nodeAnswer | Should -BeLike 'node:DataPathInUse:*'
            # The owner goes on: every key is there, more writes succeed, the replicas agree.
            Set-ReplicationKey -Cluster $owner -Key 'owned:after' -Value 'yes'
            @(Get-ReplicationKey -Cluster $owner -Prefix 'owned:').Count | Should -Be 101
            Test-ReplicationConsistency -Cluster $owner | ForEach-Object { $_.Status | Should -Be 'Consistent' }
            (Get-ReplicationNode -Cluster $node).State | Should -Be 'Running'
        }
        finally {
            Remove-ReplicationCluster -Cluster $owner -DeleteData -Confirm:$false
            Remove-ReplicationCluster -Cluster 'owned-node' -DeleteData -Confirm:$false
        }
    }
}

Describe 'One node of a cluster per session' {
    It 'refuses a second node of the same cluster in this session before it joins or founds anything (ClusterNameInUse)' {
        $secret = ConvertTo-SecureString 'one-per-session' -AsPlainText -Force
        $ports = 1..2 | ForEach-Object { Get-FreePort }
        $first = Start-ReplicationNode -Path (Join-Path $TestDrive 'ops-1') -Listen "127.0.0.1:$($ports[0])" -ClusterSecret $secret -Name 'one-per-session'
        try {
            $joinPath = Join-Path $TestDrive 'ops-2'
            { Start-ReplicationNode -Path $joinPath -Listen "127.0.0.1:$($ports[1])" -Join $first.Endpoint -ClusterSecret $secret } |
                Should -Throw -ErrorId 'ClusterNameInUse,Replication.PowerShell.Commands.StartReplicationNodeCommand'
            # The seed registered nobody: a refusal after the join would have left a node 2 that never runs.
            @(Get-ReplicationNode -Cluster 'one-per-session').Id | Should -Be @(1)
            Join-Path $joinPath 'node.json' | Should -Not -Exist
            # Founding a second cluster under a name in use is refused the same way, with no node written.
            $foundPath = Join-Path $TestDrive 'ops-found'
            { Start-ReplicationNode -Path $foundPath -Listen "127.0.0.1:$($ports[1])" -ClusterSecret $secret -Name 'one-per-session' } |
                Should -Throw -ErrorId 'ClusterNameInUse,Replication.PowerShell.Commands.StartReplicationNodeCommand'
            Join-Path $foundPath 'node.json' | Should -Not -Exist
            # The name was not left reserved by the refusals: the cluster is still the session's, and works.
            Set-ReplicationKey -Cluster 'one-per-session' -Key 'k' -Value 'v'
            (Get-ReplicationKey -Cluster 'one-per-session' -Key 'k').Value | Should -Be 'v'
        }
        finally {
            Remove-ReplicationCluster -Cluster 'one-per-session' -DeleteData -Confirm:$false
        }
    }
}

Describe 'No cluster in the session' {
    BeforeAll { Remove-AllReplicationClusters }

    It 'fails with NoCluster when no cluster exists and none is given' {
        Get-ReplicationCluster | Should -BeNullOrEmpty
        { Get-ReplicationNode } | Should -Throw -ErrorId 'NoCluster,Replication.PowerShell.Commands.GetReplicationNodeCommand'
        { Set-ReplicationKey -Key 'a' -Value 'b' } | Should -Throw -ErrorId 'NoCluster,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        { Wait-ReplicationLeader } | Should -Throw -ErrorId 'NoCluster,Replication.PowerShell.Commands.WaitReplicationLeaderCommand'
    }
}
