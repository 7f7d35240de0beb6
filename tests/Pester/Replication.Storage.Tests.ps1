# Test-ReplicationCluster -Storage in both shapes (Shapes.ps1): every node runs SQLite's quick_check over its stores on
# request only (it reads every page); a healthy cluster passes, and a page of a running node's state.db damaged behind
# SQLite's back (as a bad sector would) fails that node's Storage check, names the store, and is recorded as an event.
# A store damaged while its node is stopped is caught by the check every start runs (the node refuses to start:
# TornPageTests), so the on-demand check is for damage done while a node runs.
BeforeDiscovery {
    $script:Shapes = @(@{ Shape = 'Embedded' }, @{ Shape = 'Process' })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    . (Join-Path $PSScriptRoot 'Shapes.ps1')
    Import-Module $Manifest -Force

    function Clear-PageOutsideWal {
        # Zeroes one in-use page near the middle of a SQLite file that no frame of its WAL names (a reader would read that
        # frame instead), after a checkpoint from a connection of its own has emptied the WAL. Returns the page number.
        param([Parameter(Mandatory)] [string] $Path)
        $null = [System.Reflection.Assembly]::LoadFrom((Join-Path $RepoRoot 'out/module/Microsoft.Data.Sqlite.dll')) # loaded on first use otherwise
        $builder = [Microsoft.Data.Sqlite.SqliteConnectionStringBuilder]::new()
        $builder.DataSource = $Path; $builder.Mode = 'ReadWrite'; $builder.Pooling = $false
        $conn = [Microsoft.Data.Sqlite.SqliteConnection]::new($builder.ToString())
        try {
            $conn.Open()
            $scalar = { param($sql) $cmd = $conn.CreateCommand(); $cmd.CommandText = $sql; try { [long]$cmd.ExecuteScalar() } finally { $cmd.Dispose() } }
            & $scalar 'PRAGMA busy_timeout = 10000' | Out-Null
            & $scalar 'PRAGMA wal_checkpoint(TRUNCATE)' | Out-Null
            $pageSize = & $scalar 'PRAGMA page_size'
            $pages = & $scalar 'PRAGMA page_count'
        }
        finally { $conn.Dispose() }
        $inWal = [System.Collections.Generic.HashSet[long]]::new()
        $wal = "$Path-wal"
        if (Test-Path $wal) {
            $stream = [System.IO.FileStream]::new($wal, 'Open', 'Read', 'ReadWrite')
            try { $bytes = [byte[]]::new($stream.Length); $stream.ReadExactly($bytes) } finally { $stream.Dispose() }
            for ($at = 32; $at + 24 + $pageSize -le $bytes.Length; $at += 24 + $pageSize) {
                [void]$inWal.Add([System.Buffers.Binary.BinaryPrimitives]::ReadUInt32BigEndian([System.ReadOnlySpan[byte]]::new($bytes, $at, 4)))
            }
        }
        $page = 0
        for ($i = 0; $i -lt $pages -and $page -eq 0; $i++) {
            $candidate = [long][Math]::Floor($pages / 2) + $(if ($i % 2 -eq 0) { $i / 2 } else { - [Math]::Floor($i / 2) - 1 })
            if ($candidate -gt 1 -and $candidate -lt $pages -and -not $inWal.Contains($candidate)) { $page = $candidate }
        }
        if ($page -eq 0) { throw "Every page of $Path is in its WAL." }
        $file = [System.IO.FileStream]::new($Path, 'Open', 'Write', 'ReadWrite')
        try { $file.Position = ($page - 1) * $pageSize; $file.Write([byte[]]::new($pageSize), 0, $pageSize); $file.Flush($true) } finally { $file.Dispose() }
        $page
    }
}

Describe 'Test-ReplicationCluster -Storage (<Shape>)' -ForEach $Shapes {
    BeforeAll {
        $script:cluster = New-TestCluster -Shape $Shape -Name "storage-$($Shape.ToLower())" -Root $TestDrive -ShardCount 1
        $payload = 'v' * 300
        1..300 | ForEach-Object { [pscustomobject]@{ Key = "k$('{0:D3}' -f $_)"; Value = "$_-$payload" } } | Set-ReplicationKey -Cluster $cluster
        Wait-Condition -Because 'every replica applied every write' -Condition {
            -not (Get-ReplicationNode -Cluster $cluster | Where-Object { $_.State -ne 'Running' -or $_.LagEntries -ne 0 })
        }
    }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'runs only on request and passes a healthy cluster, telling each store''s size and time' {
        @(Test-ReplicationCluster -Cluster $cluster | Where-Object Check -EQ 'Storage') | Should -HaveCount 0
        $storage = @(Test-ReplicationCluster -Cluster $cluster -Storage | Where-Object Check -EQ 'Storage')
        $storage | Should -HaveCount 3
        $storage | ForEach-Object {
            $_.Result | Should -Be 'Pass'
            $_.Detail | Should -Match '^SQLite''s quick_check passed: raft\.db \([0-9.]+ MiB, [0-9.]+ s\), state\.db \([0-9.]+ MiB, [0-9.]+ s\)\.$'
        }
    }

    It 'fails the node whose state.db has a damaged page, naming the store, and records a StorageCorrupt event' {
        $node = Get-ReplicationNode -Cluster $cluster -Id 3
        Clear-PageOutsideWal -Path (Join-Path $node.DataPath 'state.db') | Out-Null
        $storage = @(Test-ReplicationCluster -Cluster $cluster -Storage -WarningAction SilentlyContinue | Where-Object Check -EQ 'Storage')
        ($storage | Where-Object Target -EQ 'node 1').Result | Should -Be 'Pass'
        ($storage | Where-Object Target -EQ 'node 2').Result | Should -Be 'Pass'
        $damaged = $storage | Where-Object Target -EQ 'node 3'
        $damaged.Result | Should -Be 'Fail' -Because $damaged.Detail
        $damaged.Detail | Should -Match 'state\.db'
        $damaged.Detail | Should -Match 'Restore-ReplicationNode -Id 3'
        Test-ReplicationCluster -Cluster $cluster -Storage -Quiet | Should -BeFalse
        @(Get-ReplicationEvent -Cluster $cluster -Type StorageCorrupt -Node 3 | Where-Object Message -Match 'state\.db') | Should -Not -BeNullOrEmpty
    }
}
