# Every cmdlet that acts on a cluster, in both shapes, from one test file: an embedded cluster (N nodes in this
# process) and a cluster of separate node processes administered with only their endpoints and the secret. The
# cmdlets and their results must be the same; only starting a node process again is the test's job (Shapes.ps1).
BeforeDiscovery {
    $script:Shapes = @(@{ Shape = 'Embedded' }, @{ Shape = 'Process' })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    . (Join-Path $PSScriptRoot 'Shapes.ps1')
    Import-Module $Manifest -Force
}

Describe 'Keys, nodes and shards (<Shape>)' -ForEach $Shapes {
    BeforeAll {
        $script:cluster = New-TestCluster -Shape $Shape -Name "keys-$($Shape.ToLower())" -Root $TestDrive
    }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'writes, reads, scans, compares-and-sets and deletes keys' {
        1..200 | ForEach-Object { [pscustomobject]@{ Key = "user:$('{0:D3}' -f $_)"; Value = "v$_" } } | Set-ReplicationKey -Cluster $cluster
        (Get-ReplicationKey -Cluster $cluster -Key 'user:007').Value | Should -Be 'v7'
        $scan = @(Get-ReplicationKey -Cluster $cluster -Prefix 'user:')
        $scan.Count | Should -Be 200
        ($scan.Key -join ',') | Should -Be (($scan.Key | Sort-Object -CaseSensitive) -join ',')
        $k = Get-ReplicationKey -Cluster $cluster -Key 'user:001'
        (Set-ReplicationKey -Cluster $cluster -Key 'user:001' -Value 'cas' -ExpectedVersion $k.Version -PassThru).Version | Should -Be ($k.Version + 1)
        Set-ReplicationKey -Cluster $cluster -Key 'user:001' -Value 'late' -ExpectedVersion $k.Version -ErrorAction SilentlyContinue -ErrorVariable conflict
        $conflict[0].FullyQualifiedErrorId | Should -BeLike 'VersionConflict,*'
        Remove-ReplicationKey -Cluster $cluster -Key 'user:200' -Confirm:$false
        Get-ReplicationKey -Cluster $cluster -Key 'user:200' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        foreach ($consistency in 'Linearizable', 'Lease') { (Get-ReplicationKey -Cluster $cluster -Key 'user:002' -Consistency $consistency).Value | Should -Be 'v2' }
    }

    It 'imports a piped CSV with several batches in flight: every record written, a bad one fails alone, -PassThru in input order' {
        # 2,300 rows = 5 batches of 500 with -ThrottleLimit 3; row 700 has a key that is too long and row 1,200 a
        # condition that cannot hold (the key is new): each fails alone, with its ErrorId and its own key. Key dup:1 is
        # written in the first batch and again in the fourth: the later row wins (writes of one key in input order).
        $csv = Join-Path $TestDrive "import-$Shape.csv"
        $rows = [System.Collections.Generic.List[string]]::new()
        $rows.Add('Key,Value,ExpectedVersion')
        for ($i = 1; $i -le 2300; $i++) {
            $rows.Add($(switch ($i) {
                        7 { 'dup:1,first,' }
                        700 { ('k' * 1100) + ',too long,' }
                        1200 { 'import:1200,conditional,5' }
                        1800 { 'dup:1,last,' }
                        default { "import:$('{0:D4}' -f $i),v$i," }
                    }))
        }
        [IO.File]::WriteAllLines($csv, $rows)
        $written = @(Import-Csv $csv | Set-ReplicationKey -Cluster $cluster -ThrottleLimit 3 -PassThru -ErrorAction SilentlyContinue -ErrorVariable failed)
        # A leader change while a batch waits (elections happen on this loaded machine) may leave writes OutcomeUnknown:
        # reported for their own keys like any failure. Nothing else may fail but the two bad rows.
        $known = @($failed | Where-Object { $_.FullyQualifiedErrorId -notlike 'OutcomeUnknown,*' })
        $known.Count | Should -Be 2
        $known[0].FullyQualifiedErrorId | Should -BeLike 'KeyTooLong,*'
        $known[0].TargetObject | Should -Be ('k' * 1100)
        $known[1].FullyQualifiedErrorId | Should -BeLike 'VersionConflict,*'
        $known[1].TargetObject | Should -Be 'import:1200'
        # Errors come in input order, each naming its row's key; -PassThru gives every other row, in input order.
        $failedKeys = @($failed | ForEach-Object TargetObject)
        $j = 0
        $expected = @(foreach ($row in Import-Csv $csv) { if ($j -lt $failedKeys.Count -and $row.Key -ceq $failedKeys[$j]) { $j++ } else { $row.Key } })
        $j | Should -Be $failedKeys.Count
        $written.Count | Should -Be (2300 - $failedKeys.Count)
        ($written.Key -join ',') | Should -Be ($expected -join ',')
        $stored = @(Get-ReplicationKey -Cluster $cluster -Prefix 'import:').Count
        $stored | Should -BeGreaterOrEqual @($written | Where-Object Key -Like 'import:*').Count
        $stored | Should -BeLessOrEqual 2296
        Get-ReplicationKey -Cluster $cluster -Key 'import:1200' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $dup = Get-ReplicationKey -Cluster $cluster -Key 'dup:1'
        $lastDup = @($written | Where-Object { $_.Key -eq 'dup:1' -and $_.Value -eq 'last' })
        if ($lastDup) { $dup.Value | Should -Be 'last'; $dup.Version | Should -Be $lastDup[0].Version } # acknowledged last: nothing overtook it
        else { $dup.Value | Should -BeIn 'first', 'last' }
    }

    It 'stops a piped import with batches in flight on a stop (Ctrl+C): nothing is written after it returns' {
        # Another runspace of this process (the session registry is process-wide) runs the import; Stop() is what Ctrl+C does.
        $ps = [powershell]::Create()
        $null = $ps.AddScript({
                param($Name, $Module)
                Import-Module $Module
                # The input pauses after 3,000 records (Start-Sleep ends at the stop), so the import is still running when it is
                # stopped: without the pause the pipeline ended before Stop() in the full suite (04:40 and 05:00: "Completed").
                1..100000 | ForEach-Object { if ($_ -eq 3000) { Start-Sleep -Seconds 60 }; [pscustomobject]@{ Key = "stop:$('{0:D6}' -f $_)"; Value = "v$_" } } |
                    Set-ReplicationKey -Cluster $Name -ThrottleLimit 4
            }).AddArgument($cluster.Name).AddArgument($Manifest)
        try {
            $async = $ps.BeginInvoke()
            Wait-Condition -Because 'the import has written keys' -Condition { @(Get-ReplicationKey -Cluster $cluster -Prefix 'stop:').Count -ge 1000 }
            $ps.Stop()
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            $async.IsCompleted | Should -BeTrue
            $afterStop = @(Get-ReplicationKey -Cluster $cluster -Prefix 'stop:').Count
            $afterStop | Should -BeLessThan 100000
            # What was in flight was cancelled: a later read finds no more keys than the one right after the stop.
            Set-ReplicationKey -Cluster $cluster -Key 'stop-marker' -Value 'after' # one more round trip through every shard's log order
            @(Get-ReplicationKey -Cluster $cluster -Prefix 'stop:').Count | Should -Be $afterStop
        }
        finally { $ps.Dispose() }
    }

    It 'says which replica served a stale read and how far behind it was; -MaxLag bounds it' {
        Set-ReplicationKey -Cluster $cluster -Key 'stale:1' -Value 's1'
        Wait-Condition -Because 'every replica applied every write, and nodes and shards show no lag' -Condition {
            $n = @(Get-ReplicationNode -Cluster $cluster)
            -not ($n | Where-Object { $_.State -ne 'Running' -or $_.LagEntries -ne 0 -or $_.LagSeconds -ne 0 }) -and @($n.AppliedIndex | Sort-Object -Unique).Count -eq 1 -and
            -not (Get-ReplicationShard -Cluster $cluster | Where-Object { $_.LagEntries -ne 0 -or $_.LagSeconds -ne 0 })
        }
        $ids = @((Get-ReplicationNode -Cluster $cluster).Id)
        $read = Get-ReplicationKey -Cluster $cluster -Key 'stale:1' -Consistency Stale -MaxLag 0
        $read.Value | Should -Be 's1'
        $read.ReadFrom | Should -BeIn $ids
        $read.LagEntries | Should -Be 0
        $scanned = @(Get-ReplicationKey -Cluster $cluster -Prefix 'stale:' -Consistency Stale)
        $scanned.Count | Should -Be 1
        $scanned[0].ReadFrom | Should -BeIn $ids
        $scanned[0].LagEntries | Should -Be 0
        $leaderRead = Get-ReplicationKey -Cluster $cluster -Key 'stale:1' -MaxLag 0 # Linearizable never lags: not limited
        $leaderRead.ReadFrom | Should -BeNullOrEmpty
        $leaderRead.LagEntries | Should -BeNullOrEmpty
        { Get-ReplicationKey -Cluster $cluster -Key 'stale:1' -Consistency Stale -MaxLag -1 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,Replication.PowerShell.Commands.GetReplicationKeyCommand'
    }

    It 'shows every node running and every shard with its voters and a leader' {
        $nodes = @(Get-ReplicationNode -Cluster $cluster)
        $nodes.Count | Should -Be 3
        $nodes | ForEach-Object { $_.State | Should -Be 'Running' }
        $shards = @(Wait-ReplicationLeader -Cluster $cluster -Timeout '00:00:30')
        $shards.Count | Should -Be 3
        $shards | ForEach-Object { $_.Voters.Count | Should -Be 3; $_.Leader | Should -BeIn $_.Voters }
        ($nodes | Measure-Object ShardsLed -Sum).Sum | Should -BeLessOrEqual 3
        (Get-ReplicationShard -Cluster $cluster -Key 'user:007').Id | Should -Be (Get-ReplicationKey -Cluster $cluster -Key 'user:007').Shard
    }

    It 'stops a node and starts it again; it catches up' {
        (Stop-ReplicationNode -Cluster $cluster -Id 3 -Confirm:$false).State | Should -Be 'Stopped'
        Set-ReplicationKey -Cluster $cluster -Key 'while-stopped' -Value 'x'
        Start-TestNode -Cluster $cluster -Id 3 | Out-Null
        Wait-Condition -Because 'node 3 caught up' -Condition {
            $n = @(Get-ReplicationNode -Cluster $cluster)
            -not ($n | Where-Object { $_.State -ne 'Running' -or $_.LagEntries -ne 0 }) -and @($n.AppliedIndex | Sort-Object -Unique).Count -eq 1
        }
    }

    It 'shows a crashed node as down within a second or so, and keeps serving writes' {
        Stop-TestNodeHard -Cluster $cluster -Id 2
        $expected = if ($Shape -eq 'Embedded') { 'Stopped' } else { 'Unreachable' } # its host knows; remote observers see it stop answering
        Wait-Condition -Timeout '00:00:05' -Because "node 2 shows $expected" -Condition { (Get-ReplicationNode -Cluster $cluster -Id 2).State -eq $expected }
        $down = Get-ReplicationNode -Cluster $cluster -Id 2
        $down.Term | Should -BeGreaterThan 0 # last known values are kept
        Set-ReplicationKey -Cluster $cluster -Key 'while-down' -Value 'y' -Timeout '00:00:20'
        (Get-ReplicationShard -Cluster $cluster | Where-Object Leader -EQ 2) | Should -BeNullOrEmpty
        Start-TestNode -Cluster $cluster -Id 2 | Out-Null
        (Get-ReplicationKey -Cluster $cluster -Key 'while-down').Value | Should -Be 'y'
    }

    # Node processes only: defined for that shape alone (discovery sees -ForEach's data), not skipped in the other.
    if ($Shape -eq 'Process') {
    It 'refuses a second opener of a node folder in use (DataPathInUse), and Start-ReplicationNode -Id of a node process says what to do' {
        $entry = $script:NodeProcesses[$cluster.Name].Nodes[1]
        { Start-NodeProcess -Folder $entry.Folder -Port (Get-FreePort) } | Should -Throw -ExpectedMessage '*DataPathInUse*'
        # Still serving: status polls may miss a period on a loaded machine (Unreachable for a moment), so wait a bounded time.
        Wait-Condition -Timeout '00:00:15' -Because 'node 1 keeps running' -Condition { (Get-ReplicationNode -Cluster $cluster -Id 1).State -eq 'Running' }
        Stop-TestNodeHard -Cluster $cluster -Id 3
        Start-ReplicationNode -Cluster $cluster -Id 3 -ErrorAction SilentlyContinue -ErrorVariable refused
        $refused[0].FullyQualifiedErrorId | Should -BeLike 'NotSupportedRemotely,*'
        $refused[0].Exception.Message | Should -BeLike '*Start-ReplicationNode -Path*'
        Start-TestNode -Cluster $cluster -Id 3 | Out-Null
    }

    It 'rebuilds a node process started with its stores discarded (Start-ReplicationNode -Rebuild)' {
        Stop-TestNodeHard -Cluster $cluster -Id 3
        Start-TestNode -Cluster $cluster -Id 3 -Rebuild | Out-Null
        Wait-Condition -Timeout '00:00:45' -Because 'node 3 carried out its rebuild, hosts its shards again as a voter and caught up' -Condition {
            $node = Get-ReplicationNode -Cluster $cluster -Id 3
            $node.RebuiltEpoch -ge 1 -and -not $node.Rebuilding -and $node.ShardsHosted -eq 3 -and
                -not (Get-ReplicationShard -Cluster $cluster | Where-Object { $_.Voters -notcontains 3 }) -and
                -not (Get-ReplicationNode -Cluster $cluster | Where-Object { $_.State -ne 'Running' -or $_.LagEntries -ne 0 })
        }
        (Get-ReplicationKey -Cluster $cluster -Key 'user:007' -Consistency Linearizable).Value | Should -Be 'v7'
    }
    }

    It 'compares replicas with Test-ReplicationConsistency' {
        $checks = @(Test-ReplicationConsistency -Cluster $cluster -Timeout '00:00:30')
        $checks.Count | Should -Be 3
        $checks | ForEach-Object { $_.Status | Should -Be 'Consistent'; $_.Replicas.Count | Should -Be 3 -Because "unchecked: $($_.Unchecked -join ','), replicas $($_.Replicas.Node -join ',')" }
    }
}

Describe 'Stopping nodes (<Shape>)' -ForEach $Shapes {
    # Stop-ReplicationNode through a client connected to the very node it stops, through another node, and on the only
    # node there is. Bug fixed: a node answered its stop only after it had closed the request's connection, so the
    # client's retry found no endpoint on a one-node cluster ("None of the endpoints answered" after a stop that succeeded).
    BeforeAll {
        $script:cluster = New-TestCluster -Shape $Shape -Name "stops-$($Shape.ToLower())" -Root $TestDrive
        function Connect-Through([int] $Id, [string] $Name) {
            $endpoint = (Get-ReplicationNode -Cluster $cluster -Id $Id).Endpoint
            Connect-ReplicationCluster -Endpoint $endpoint -ClusterSecret $ShapeSecret -Name $Name
        }
        function Stop-Through([int] $Via, [int] $Id, [string] $Name) {
            # Stops node $Id with a client connected to node $Via; the answer names the stopped node.
            $client = Connect-Through -Id $Via -Name $Name
            try {
                $stopped = Stop-ReplicationNode -Cluster $client -Id $Id -Confirm:$false -ErrorAction Stop
                $stopped.Id | Should -Be $Id
                $stopped.State | Should -Be 'Stopped'
            }
            finally { Disconnect-ReplicationCluster -Cluster $client }
            Assert-NodeGone -Id $Id
        }
        function Assert-NodeGone([int] $Id, $Cluster = $script:cluster) {
            # A node process exits once it stopped (its -Wait returns); an embedded node's host shows it Stopped.
            if ($Cluster.Mode -eq 'Embedded') { return }
            $process = $script:NodeProcesses[$Cluster.Name].Nodes[$Id].Process
            $process.WaitForExit(30000) | Should -BeTrue -Because "node $Id's process exits after its stop"
            $process.ExitCode | Should -Be 0
        }
    }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'stops nothing with -WhatIf' {
        $out = Stop-ReplicationNode -Cluster $cluster -Id 2 -WhatIf
        $out | Should -BeNullOrEmpty
        (Get-ReplicationNode -Cluster $cluster -Id 2).State | Should -Be 'Running'
    }

    It 'starts, founds and disconnects nothing with -WhatIf' {
        # Without -WhatIf, starting a running node writes its status (it succeeds without change).
        Start-ReplicationNode -Cluster $cluster -Id 2 -WhatIf | Should -BeNullOrEmpty
        $folder = Join-Path $TestDrive "whatif-node-$($Shape.ToLower())"
        $port = Get-FreePort
        Start-ReplicationNode -Path $folder -Listen "127.0.0.1:$port" -ClusterSecret $ShapeSecret -Name "whatif-$($Shape.ToLower())" -WhatIf | Should -BeNullOrEmpty
        Test-Path $folder | Should -BeFalse
        Get-ReplicationCluster -Name "whatif-$($Shape.ToLower())" -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $client = Connect-Through -Id 1 -Name "whatif-client-$($Shape.ToLower())"
        try {
            Disconnect-ReplicationCluster -Cluster $client -WhatIf
            (Get-ReplicationNode -Cluster $client -Id 1).State | Should -Be 'Running' -Because 'the session is still connected'
        }
        finally { Disconnect-ReplicationCluster -Cluster $client }
        Get-ReplicationCluster -Name $client.Name -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'stops a node through a client connected to that very node; the others show it Stopped' {
        Stop-Through -Via 3 -Id 3 -Name "stops-own-$($Shape.ToLower())"
        (Get-ReplicationNode -Cluster $cluster -Id 3).State | Should -Be 'Stopped'
        Set-ReplicationKey -Cluster $cluster -Key 'after-own-stop' -Value 'x' -Timeout 20
        Start-TestNode -Cluster $cluster -Id 3 | Out-Null
    }

    It 'stops a node through a client connected to another node' {
        Stop-Through -Via 1 -Id 2 -Name "stops-other-$($Shape.ToLower())"
        (Get-ReplicationKey -Cluster $cluster -Key 'after-own-stop').Value | Should -Be 'x'
        Start-TestNode -Cluster $cluster -Id 2 | Out-Null
    }

    It 'stops the only node of a one-node cluster and returns it Stopped' {
        $solo = New-TestCluster -Shape $Shape -Name "solo-$($Shape.ToLower())" -Root $TestDrive -NodeCount 1 -ShardCount 2
        try {
            Set-ReplicationKey -Cluster $solo -Key 'solo' -Value 'kept'
            $stopped = Stop-ReplicationNode -Cluster $solo -Id 1 -Confirm:$false -ErrorAction Stop
            $stopped.Id | Should -Be 1
            $stopped.State | Should -Be 'Stopped'
            $stopped.ShardsLed | Should -Be 0
            Assert-NodeGone -Id 1 -Cluster $solo
            Start-TestNode -Cluster $solo -Id 1 | Out-Null
            (Get-ReplicationKey -Cluster $solo -Key 'solo').Value | Should -Be 'kept'
        }
        finally { Remove-TestCluster -Cluster $solo }
    }
}

Describe 'Backups and restores (<Shape>)' -ForEach $Shapes {
    BeforeAll {
        $script:cluster = New-TestCluster -Shape $Shape -Name "backup-$($Shape.ToLower())" -Root $TestDrive
        # A source of data to load: a small embedded cluster and its hot backup.
        $script:source = New-ReplicationCluster -Name "source-$($Shape.ToLower())" -Path (Join-Path $TestDrive "source-$Shape") -ShardCount 2
        1..150 | ForEach-Object { [pscustomobject]@{ Key = "src:$_"; Value = "s$_" } } | Set-ReplicationKey -Cluster $source
        Set-ReplicationKey -Cluster $source -Key 'src:1' -Value 'twice' # version 2, kept by a restore
        $script:sourceBackup = Backup-ReplicationCluster -Cluster $source -Path (Join-Path $TestDrive "source-backup-$Shape")
    }
    AfterAll {
        Remove-TestCluster -Cluster $script:cluster
        Get-ReplicationCluster | Where-Object Name -Like "*-$($Shape.ToLower())*" | Where-Object Mode -EQ 'Embedded' | Remove-ReplicationCluster -DeleteData -Confirm:$false
    }

    It 'loads a backup into the empty cluster, keeping versions (Restore-ReplicationCluster -Cluster)' {
        Restore-ReplicationCluster -Path $sourceBackup.Path -Cluster $cluster | Out-Null
        @(Get-ReplicationKey -Cluster $cluster -Prefix 'src:').Count | Should -Be 150
        $one = Get-ReplicationKey -Cluster $cluster -Key 'src:1'
        ($one.Value, $one.Version) | Should -Be @('twice', 2)
        { Restore-ReplicationCluster -Path $sourceBackup.Path -Cluster $cluster } |
            Should -Throw -ErrorId 'RestoreTargetNotEmpty,Replication.PowerShell.Commands.RestoreReplicationClusterCommand'
    }

    It 'takes a hot backup that verifies and restores into a new cluster' {
        $backup = Backup-ReplicationCluster -Cluster $cluster -Path (Join-Path $TestDrive "hot-$Shape")
        $backup.Kind | Should -Be 'Hot'
        $backup.KeyCount | Should -Be 150
        $backup.BarrierPause | Should -BeGreaterThan ([TimeSpan]::Zero)
        (Test-ReplicationBackup -Path $backup.Path).Valid | Should -BeTrue
        $copy = Restore-ReplicationCluster -Path $backup.Path -Name "copy-$($Shape.ToLower())" -ClusterPath (Join-Path $TestDrive "copy-$Shape")
        $copy.Id | Should -Not -Be $cluster.Id
        @(Get-ReplicationKey -Cluster $copy -Prefix 'src:').Count | Should -Be 150
        (Get-ReplicationKey -Cluster $copy -Key 'src:1').Version | Should -Be 2
    }

    It 'takes a cold backup of a node and restores that node from it' {
        $cold = Backup-ReplicationNode -Cluster $cluster -Id 2 -Path (Join-Path $TestDrive "cold-$Shape") -Cold -Confirm:$false
        $cold.Kind | Should -Be 'Cold'
        $cold.NodeId | Should -Be 2
        (Test-ReplicationBackup -Path $cold.Path).Valid | Should -BeTrue
        (Get-ReplicationNode -Cluster $cluster -Id 2).State | Should -Be 'Running'
        Set-ReplicationKey -Cluster $cluster -Key 'after-cold' -Value 'z'
        $node = Restore-ReplicationNode -Cluster $cluster -Id 2 -Path $cold.Path -Confirm:$false
        $node.State | Should -Be 'Running'
        (Get-ReplicationKey -Cluster $cluster -Key 'after-cold').Value | Should -Be 'z'
        Test-ReplicationConsistency -Cluster $cluster | ForEach-Object { $_.Status | Should -Be 'Consistent' }
    }

    It 'rebuilds a node from its peers (Restore-ReplicationNode without a backup)' {
        $node = Restore-ReplicationNode -Cluster $cluster -Id 3 -Confirm:$false
        $node.State | Should -Be 'Running'
        Wait-Condition -Because 'every shard has node 3 as a voter again' -Condition {
            -not (Get-ReplicationShard -Cluster $cluster | Where-Object { $_.Voters -notcontains 3 })
        }
        @(Get-ReplicationKey -Cluster $cluster -Prefix 'src:' -Consistency Linearizable).Count | Should -Be 150
        Test-ReplicationConsistency -Cluster $cluster | ForEach-Object { $_.Status | Should -Be 'Consistent' }
    }
}
