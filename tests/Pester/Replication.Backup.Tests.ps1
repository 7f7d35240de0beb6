# Backup, restore and consistency checks as an operator runs them: a hot backup under a stream of
# writes restored into a new cluster that equals the source at the manifest's indexes; damaged
# backups refused with BackupCorrupt; a cold node backup that keeps the cluster available; and
# Test-ReplicationConsistency finding a row changed behind the engine's back.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
}

Describe 'Hot backup under writes, and restore' {
    BeforeAll {
        $source = New-ReplicationCluster -Name 'hotsource' -Path (Join-Path $TestDrive 'hotsource') -ShardCount 3
        Wait-ReplicationLeader -Cluster $source -Timeout 00:00:30 | Out-Null
        $initial = 1..150 | ForEach-Object { [pscustomobject]@{ Key = "stream:$_"; Value = 'initial' } } | Set-ReplicationKey -Cluster $source -PassThru
    }
    AfterAll { Get-ReplicationCluster | Where-Object Name -In 'hotsource', 'hotrestored' | Remove-ReplicationCluster -DeleteData -Confirm:$false }

    It 'restores a new cluster that equals the source at the manifest indexes' {
        $acked = [System.Collections.Concurrent.ConcurrentQueue[object]]::new()
        $stop = [System.Collections.Concurrent.ConcurrentDictionary[string, bool]]::new()
        $writer = Start-ThreadJob -ArgumentList $Manifest, $acked, $stop -ScriptBlock {
            param($manifest, $acked, $stop)
            Import-Module $manifest
            for ($i = 1; $i -le 20000 -and -not $stop.ContainsKey('stop'); $i++) {
                $k = Set-ReplicationKey -Cluster 'hotsource' -Key "stream:$($i % 200)" -Value "v$i" -PassThru -Timeout 00:00:10 -ErrorAction Stop
                $acked.Enqueue($k)
            }
        }
        try {
            Wait-Condition { $acked.Count -ge 100 } -Timeout 00:01:00 -Because 'the writer is running'
            $path = Join-Path $TestDrive 'hot-backup'
            $backup = Backup-ReplicationCluster -Cluster $source -Path $path
            $atBackup = $acked.Count
            Wait-Condition { $acked.Count -ge $atBackup + 50 -or $writer.State -ne 'Running' } -Timeout 00:01:00 -Because 'writes continue after the backup'
        }
        finally {
            $stop['stop'] = $true
            Wait-Job $writer -Timeout 60 | Out-Null
            $writer.State | Should -Be 'Completed'
            Remove-Job $writer -Force
        }

        $backup | Should -BeOfType ([Replication.ReplicationBackup])
        $backup.Kind | Should -Be 'Hot'
        $backup.ClusterId | Should -Be $source.Id
        $backup.Shards | Should -HaveCount 3
        $backup.Checksum | Should -Match '^[0-9a-f]{64}$'
        Join-Path $path 'backup.json' | Should -Exist

        $verified = Test-ReplicationBackup -Path $path
        $verified.Valid | Should -BeTrue
        $verified.Checksum | Should -Be $backup.Checksum

        $restored = Restore-ReplicationCluster -Path $path -Name 'hotrestored' -ClusterPath (Join-Path $TestDrive 'hotrestored') -Confirm:$false
        $restored.Id | Should -Not -Be $source.Id
        (Get-ReplicationCluster -Name 'hotrestored').Id | Should -Be $restored.Id
        Wait-ReplicationLeader -Cluster $restored -Timeout 00:00:30 | Out-Null

        $actual = @{}
        Get-ReplicationKey -Cluster $restored | ForEach-Object { $actual[$_.Key] = $_ }
        $stamps = $acked.ToArray()
        foreach ($shard in $backup.Shards) {
            # The state at the shard's index: the initial keys, overlaid in index order with every
            # acknowledged write at or below that index.
            $expected = @{}
            $initial | Where-Object Shard -EQ $shard.Shard | ForEach-Object { $expected[$_.Key] = $_ }
            $stamps | Where-Object { $_.Shard -eq $shard.Shard -and $_.Index -le $shard.Index } | Sort-Object Index |
                ForEach-Object { $expected[$_.Key] = $_ }
            $mine = @($actual.Values | Where-Object Shard -EQ $shard.Shard)
            $mine | Should -HaveCount $expected.Count -Because "shard $($shard.Shard) at index $($shard.Index)"
            $mine | Should -HaveCount $shard.KeyCount
            foreach ($key in $expected.Keys) {
                $actual[$key].Value | Should -Be $expected[$key].Value -Because "$key at index $($shard.Index)"
                $actual[$key].Version | Should -Be $expected[$key].Version
            }
        }
        $actual.Count | Should -Be $backup.KeyCount
        @($acked.ToArray() | Where-Object { $_.Index -gt ($backup.Shards | Where-Object Shard -EQ $_.Shard).Index }).Count |
            Should -BeGreaterThan 0 -Because 'the backup was taken while writes continued'
    }

    It 'refuses a backup folder that is not empty' {
        { Backup-ReplicationCluster -Cluster $source -Path (Join-Path $TestDrive 'hot-backup') } |
            Should -Throw -ErrorId 'BackupPathInUse,Replication.PowerShell.Commands.BackupReplicationClusterCommand'
    }
}

Describe 'A damaged backup' {
    BeforeAll {
        $cluster = New-ReplicationCluster -Name 'damaged' -Path (Join-Path $TestDrive 'damaged')
        Wait-ReplicationLeader -Cluster $cluster -Timeout 00:00:30 | Out-Null
        1..100 | ForEach-Object { [pscustomobject]@{ Key = "d:$_"; Value = "$_" } } | Set-ReplicationKey -Cluster $cluster
        $path = Join-Path $TestDrive 'damaged-backup'
        $backup = Backup-ReplicationCluster -Cluster $cluster -Path $path
        $file = Join-Path $path $backup.Shards[2].File
        $original = [IO.File]::ReadAllBytes($file)
    }
    AfterAll { Remove-ReplicationCluster -Cluster $cluster -DeleteData -Confirm:$false }
    AfterEach { [IO.File]::WriteAllBytes($file, $original) }

    It 'with one flipped byte is reported BackupCorrupt naming the file, and refused by a restore that writes nothing' {
        $bytes = [byte[]]$original.Clone()
        $bytes[[int]($bytes.Length / 2)] = $bytes[[int]($bytes.Length / 2)] -bxor 0x55
        [IO.File]::WriteAllBytes($file, $bytes)

        $result = Test-ReplicationBackup -Path $path -ErrorAction SilentlyContinue -ErrorVariable err
        $err | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -Be 'BackupCorrupt,Replication.PowerShell.Commands.TestReplicationBackupCommand'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $err[0].TargetObject | Should -Be $file
        $err[0].Exception.Message | Should -BeLike "*$($backup.Shards[2].File)*"
        $result.Valid | Should -BeFalse

        $target = Join-Path $TestDrive 'never'
        { Restore-ReplicationCluster -Path $path -Name 'never' -ClusterPath $target -Confirm:$false } |
            Should -Throw -ErrorId 'BackupCorrupt,Replication.PowerShell.Commands.RestoreReplicationClusterCommand'
        $target | Should -Not -Exist
        Get-ReplicationCluster | Where-Object Name -EQ 'never' | Should -BeNullOrEmpty
    }

    It 'when truncated is reported BackupCorrupt' {
        [IO.File]::WriteAllBytes($file, $original[0..([int]($original.Length / 3))])
        Test-ReplicationBackup -Path $path -ErrorAction SilentlyContinue -ErrorVariable err | Out-Null
        $err[0].FullyQualifiedErrorId | Should -Be 'BackupCorrupt,Replication.PowerShell.Commands.TestReplicationBackupCommand'
        $err[0].Exception.Message | Should -BeLike '*bytes*'
    }

    It 'is valid again once the file is back, and a folder without a backup is BackupNotFound' {
        (Test-ReplicationBackup -Path $path).Valid | Should -BeTrue
        Test-ReplicationBackup -Path $TestDrive -ErrorAction SilentlyContinue -ErrorVariable err | Out-Null
        $err[0].FullyQualifiedErrorId | Should -Be 'BackupNotFound,Replication.PowerShell.Commands.TestReplicationBackupCommand'
    }
}

Describe 'Cold backup of a node' {
    BeforeAll {
        $cluster = New-ReplicationCluster -Name 'cold' -Path (Join-Path $TestDrive 'cold')
        Wait-ReplicationLeader -Cluster $cluster -Timeout 00:00:30 | Out-Null
        # WriteConcern All: node 2 has applied every key before its cold backup (a majority ack need not wait for it).
        1..100 | ForEach-Object { [pscustomobject]@{ Key = "c:$_"; Value = "$_" } } | Set-ReplicationKey -Cluster $cluster -WriteConcern All
    }
    AfterAll { Get-ReplicationCluster | Where-Object Name -In 'cold', 'coldrestored' | Remove-ReplicationCluster -DeleteData -Confirm:$false }

    It 'does nothing with -WhatIf' {
        $path = Join-Path $TestDrive 'cold-whatif'
        Backup-ReplicationNode -Cluster $cluster -Id 2 -Path $path -Cold -WhatIf
        $path | Should -Not -Exist
        (Get-ReplicationNode -Cluster $cluster -Id 2).State | Should -Be 'Running'
    }

    It 'stops, copies and restarts the node while the cluster keeps taking writes' {
        $path = Join-Path $TestDrive 'cold-backup'
        $backup = Backup-ReplicationNode -Cluster $cluster -Id 2 -Path $path -Cold -Confirm:$false
        $backup.Kind | Should -Be 'Cold'
        $backup.NodeId | Should -Be 2
        $backup.KeyCount | Should -Be 100
        (Get-ReplicationNode -Cluster $cluster -Id 2).State | Should -Be 'Running'
        (Test-ReplicationBackup -Path $path).Valid | Should -BeTrue
        Set-ReplicationKey -Cluster $cluster -Key 'after-cold' -Value 'ok'

        # Node 2 hosts every shard (3 nodes, replication factor 3), so its cold backup restores a cluster.
        $restored = Restore-ReplicationCluster -Path $path -Name 'coldrestored' -ClusterPath (Join-Path $TestDrive 'coldrestored') -Confirm:$false
        Wait-ReplicationLeader -Cluster $restored -Timeout 00:00:30 | Out-Null
        @(Get-ReplicationKey -Cluster $restored -Prefix 'c:') | Should -HaveCount 100
    }

    It 'requires -Cold' {
        { Backup-ReplicationNode -Cluster $cluster -Id 1 -Path (Join-Path $TestDrive 'x') -Cold:$false -Confirm:$false } |
            Should -Throw -ErrorId 'ColdRequired,Replication.PowerShell.Commands.BackupReplicationNodeCommand'
    }
}

Describe 'Test-ReplicationConsistency' {
    BeforeAll {
        $cluster = New-ReplicationCluster -Name 'merkle' -Path (Join-Path $TestDrive 'merkle') -ShardCount 2
        Wait-ReplicationLeader -Cluster $cluster -Timeout 00:00:30 | Out-Null
        $written = 1..400 | ForEach-Object { [pscustomobject]@{ Key = 'user:{0:D4}' -f $_; Value = "v$_" } } | Set-ReplicationKey -Cluster $cluster -PassThru
    }
    AfterAll { Remove-ReplicationCluster -Cluster $cluster -DeleteData -Confirm:$false }

    It 'reports every shard consistent, with one Merkle root per replica' {
        $results = Test-ReplicationConsistency -Cluster $cluster
        $results | Should -HaveCount 2
        foreach ($r in $results) {
            $r.Status | Should -Be 'Consistent'
            $r.Consistent | Should -BeTrue
            $r.Replicas | Should -HaveCount 3
            @($r.Replicas.MerkleRoot | Select-Object -Unique) | Should -HaveCount 1
            $r.AppliedIndex | Should -BeGreaterThan 0
        }
    }

    It 'finds exactly the key range of a row changed behind the engine''s back, on that replica' {
        $victim = $written[211]
        Wait-Condition { @(Get-ReplicationNode -Cluster $cluster | Where-Object LagEntries -NE 0).Count -eq 0 } -Because 'replicas caught up'
        # A replica that does not lead the victim's shard: ask the consistency check who leads.
        $before = Test-ReplicationConsistency -Cluster $cluster -Shard $victim.Shard
        $follower = ($before.Replicas | Where-Object { -not $_.Leader } | Select-Object -First 1).Node
        $stateDb = Join-Path (Get-ReplicationNode -Cluster $cluster -Id $follower).DataPath 'state.db'
        $connection = [Microsoft.Data.Sqlite.SqliteConnection]::new("Data Source=$stateDb;Pooling=False")
        try {
            $connection.Open()
            $command = $connection.CreateCommand()
            $command.CommandText = 'PRAGMA busy_timeout=5000; UPDATE kv SET value = ''tampered'' WHERE shard = $s AND key = $k'
            $command.Parameters.AddWithValue('$s', $victim.Shard) | Out-Null
            $command.Parameters.AddWithValue('$k', $victim.Key) | Out-Null
            $command.ExecuteNonQuery() | Should -Be 1
        }
        finally { $connection.Dispose() }

        $result = Test-ReplicationConsistency -Cluster $cluster -Shard $victim.Shard -WarningVariable warnings -WarningAction SilentlyContinue
        $result.Status | Should -Be 'Divergent'
        $result.Consistent | Should -BeFalse
        $warnings | Should -HaveCount 1
        $result.DivergentRanges | Should -HaveCount 1
        $range = $result.DivergentRanges[0]
        $range.Node | Should -Be $follower
        $range.Keys | Should -Be @($victim.Key)
        if ($null -ne $range.StartKey) { [string]::CompareOrdinal($range.StartKey, $victim.Key) | Should -BeLessOrEqual 0 }
        if ($null -ne $range.EndKey) { [string]::CompareOrdinal($victim.Key, $range.EndKey) | Should -BeLessThan 0 }
        @($result.Replicas.MerkleRoot | Select-Object -Unique) | Should -HaveCount 2

        (Test-ReplicationConsistency -Cluster $cluster -Shard (1 - $victim.Shard)).Status | Should -Be 'Consistent'
    }

    It 'reports an unknown shard as ShardNotFound' {
        Test-ReplicationConsistency -Cluster $cluster -Shard 7 -ErrorAction SilentlyContinue -ErrorVariable err | Out-Null
        $err[0].FullyQualifiedErrorId | Should -Be 'ShardNotFound,Replication.PowerShell.Commands.TestReplicationConsistencyCommand'
    }
}
