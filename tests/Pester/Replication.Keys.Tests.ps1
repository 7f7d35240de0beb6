# Reading and writing keys as an operator would: single keys, pipelines, prefix scans, versions,
# deletes, and bad input with stable ErrorIds.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
    $cluster = New-ReplicationCluster -Name 'keys' -Path (Join-Path $TestDrive 'keys')
    Wait-ReplicationLeader -Cluster $cluster -Timeout 00:00:30 | Out-Null
}
AfterAll {
    Remove-ReplicationCluster -Cluster $cluster -DeleteData -Confirm:$false
}

Describe 'Set-, Get- and Remove-ReplicationKey' {
    It 'writes a key and reads it back' {
        $written = Set-ReplicationKey -Cluster $cluster -Key 'greeting' -Value 'hello' -PassThru
        $written | Should -BeOfType ([Replication.ReplicationKey])
        $written.Version | Should -Be 1
        $written.Index | Should -BeGreaterThan 0
        $read = Get-ReplicationKey -Cluster $cluster -Key 'greeting'
        $read.Value | Should -Be 'hello'
        $read.Version | Should -Be 1
        $read.Shard | Should -Be $written.Shard
        $read.Cluster | Should -Be 'keys'
    }

    It 'writes nothing without -PassThru' {
        Set-ReplicationKey -Cluster $cluster -Key 'quiet' -Value 'x' | Should -BeNullOrEmpty
    }

    It 'accepts an empty value' {
        Set-ReplicationKey -Cluster $cluster -Key 'empty-value' -Value ''
        (Get-ReplicationKey -Cluster $cluster -Key 'empty-value').Value | Should -Be ''
    }

    It 'reports a missing key as a non-terminating KeyNotFound and goes on' {
        $found = Get-ReplicationKey -Cluster $cluster -Key 'missing', 'greeting' -ErrorAction SilentlyContinue -ErrorVariable err
        $found.Key | Should -Be 'greeting'
        $err | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -Be 'KeyNotFound,Replication.PowerShell.Commands.GetReplicationKeyCommand'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].TargetObject | Should -Be 'missing'
        $err[0].Exception.Message | Should -Not -Match 'wildcard'
    }

    It 'reads -Key literally, and says to use -Prefix when a missing key looks like a wildcard' {
        Set-ReplicationKey -Cluster $cluster -Key 'star*' -Value 'a literal star'
        (Get-ReplicationKey -Cluster $cluster -Key 'star*').Value | Should -Be 'a literal star'
        Get-ReplicationKey -Cluster $cluster -Key 'greet*' -ErrorAction SilentlyContinue -ErrorVariable err | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'KeyNotFound,Replication.PowerShell.Commands.GetReplicationKeyCommand'
        $err[0].Exception.Message | Should -BeLike "*-Key is not a wildcard: for every key that starts with 'greet', use -Prefix 'greet'."
        (Get-ReplicationKey -Cluster $cluster -Prefix 'greet').Key | Should -Contain 'greeting'
    }

    It 'scans a prefix in ordinal key order' {
        foreach ($key in 'scan:b', 'scan:a:2', 'scan:a:10', 'scan:a:1', 'scan:B', 'scanner') {
            Set-ReplicationKey -Cluster $cluster -Key $key -Value $key
        }
        (Get-ReplicationKey -Cluster $cluster -Prefix 'scan:').Key | Should -Be @('scan:B', 'scan:a:1', 'scan:a:10', 'scan:a:2', 'scan:b')
        (Get-ReplicationKey -Cluster $cluster -Prefix 'scan:a:').Key | Should -Be @('scan:a:1', 'scan:a:10', 'scan:a:2')
        Get-ReplicationKey -Cluster $cluster -Prefix 'no-such-prefix:' | Should -BeNullOrEmpty
    }

    It 'returns every key in order without -Key or -Prefix' {
        $all = (Get-ReplicationKey -Cluster $cluster).Key
        $all | Should -Contain 'greeting'
        $all | Should -Contain 'scanner'
        $sorted = [string[]]$all.Clone()
        [Array]::Sort($sorted, [StringComparer]::Ordinal)
        $all | Should -Be $sorted
    }

    It 'stops a scan early when the pipeline stops (Select-Object -First)' {
        (Get-ReplicationKey -Cluster $cluster -Prefix 'scan:' | Select-Object -First 2).Key | Should -Be @('scan:B', 'scan:a:1')
    }

    It 'deletes a key; deleting an absent key succeeds silently' {
        Set-ReplicationKey -Cluster $cluster -Key 'doomed' -Value 'x'
        Remove-ReplicationKey -Cluster $cluster -Key 'doomed' -Confirm:$false
        Get-ReplicationKey -Cluster $cluster -Key 'doomed' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Remove-ReplicationKey -Cluster $cluster -Key 'doomed' -Confirm:$false -ErrorVariable err
        $err | Should -BeNullOrEmpty
    }

    It 'deletes the keys piped from Get-ReplicationKey' {
        1..5 | ForEach-Object { Set-ReplicationKey -Cluster $cluster -Key "pipe-del:$_" -Value "$_" }
        Get-ReplicationKey -Cluster $cluster -Prefix 'pipe-del:' | Remove-ReplicationKey -Confirm:$false
        Get-ReplicationKey -Cluster $cluster -Prefix 'pipe-del:' | Should -BeNullOrEmpty
    }

    It 'does not delete under -WhatIf' {
        Set-ReplicationKey -Cluster $cluster -Key 'kept' -Value 'x'
        Remove-ReplicationKey -Cluster $cluster -Key 'kept' -WhatIf
        (Get-ReplicationKey -Cluster $cluster -Key 'kept').Value | Should -Be 'x'
    }
}

Describe 'Versions and -ExpectedVersion' {
    It 'counts versions up by one per write' {
        $v = 1..3 | ForEach-Object { Set-ReplicationKey -Cluster $cluster -Key 'counter' -Value "$_" -PassThru }
        $v.Version | Should -Be @(1, 2, 3)
        $v[2].Index | Should -BeGreaterThan $v[0].Index
    }

    It 'writes when the expected version matches, and refuses with VersionConflict when not' {
        $current = Get-ReplicationKey -Cluster $cluster -Key 'counter'
        $next = Set-ReplicationKey -Cluster $cluster -Key 'counter' -Value 'cas' -ExpectedVersion $current.Version -PassThru
        $next.Version | Should -Be ($current.Version + 1)

        Set-ReplicationKey -Cluster $cluster -Key 'counter' -Value 'stale' -ExpectedVersion $current.Version -PassThru -ErrorAction SilentlyContinue -ErrorVariable err |
            Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'VersionConflict,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        $err[0].CategoryInfo.Category | Should -Be 'WriteError'
        $err[0].TargetObject | Should -Be 'counter'
        # What to do next, for Get-Error and runbooks; the message shown is the engine's, unchanged.
        $err[0].ErrorDetails.RecommendedAction | Should -Match 'current Version .*-ExpectedVersion'
        $err[0].ToString() | Should -Be $err[0].Exception.Message
        (Get-ReplicationKey -Cluster $cluster -Key 'counter').Value | Should -Be 'cas'
        { Set-ReplicationKey -Cluster $cluster -Key 'counter' -Value 'stale' -ExpectedVersion 1 -ErrorAction Stop } |
            Should -Throw -ErrorId 'VersionConflict,Replication.PowerShell.Commands.SetReplicationKeyCommand'
    }

    It 'creates only when absent with -ExpectedVersion 0' {
        Set-ReplicationKey -Cluster $cluster -Key 'create-once' -Value 'first' -ExpectedVersion 0
        Set-ReplicationKey -Cluster $cluster -Key 'create-once' -Value 'second' -ExpectedVersion 0 -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -Be 'VersionConflict,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        (Get-ReplicationKey -Cluster $cluster -Key 'create-once').Value | Should -Be 'first'
    }

    It 'deletes conditionally' {
        $k = Set-ReplicationKey -Cluster $cluster -Key 'cond-del' -Value 'x' -PassThru
        Remove-ReplicationKey -Cluster $cluster -Key 'cond-del' -ExpectedVersion ($k.Version + 5) -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -Be 'VersionConflict,Replication.PowerShell.Commands.RemoveReplicationKeyCommand'
        (Get-ReplicationKey -Cluster $cluster -Key 'cond-del').Value | Should -Be 'x'
        Remove-ReplicationKey -Cluster $cluster -Key 'cond-del' -ExpectedVersion $k.Version -Confirm:$false
        Get-ReplicationKey -Cluster $cluster -Key 'cond-del' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Remove-ReplicationKey -Cluster $cluster -Key 'cond-del' -ExpectedVersion 3 -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable err2
        $err2[0].FullyQualifiedErrorId | Should -Be 'VersionConflict,Replication.PowerShell.Commands.RemoveReplicationKeyCommand'
    }
}

Describe 'Pipeline batching' {
    It 'writes 1,000 piped objects and returns them in input order with -PassThru' {
        $written = 1..1000 | ForEach-Object { [pscustomobject]@{ Key = "batch:$_"; Value = "v$_" } } |
            Set-ReplicationKey -Cluster $cluster -PassThru
        $written | Should -HaveCount 1000
        ($written.Key -join ',') | Should -Be ((1..1000 | ForEach-Object { "batch:$_" }) -join ',')
        $read = Get-ReplicationKey -Cluster $cluster -Prefix 'batch:'
        $read | Should -HaveCount 1000
        ($read | Where-Object { $_.Value -ne ('v' + $_.Key.Substring(6)) }) | Should -BeNullOrEmpty
    }

    It 'binds ExpectedVersion per piped object, and one bad item does not fail the others' {
        $rows = @(
            [pscustomobject]@{ Key = 'mixed:1'; Value = 'a' }
            [pscustomobject]@{ Key = ''; Value = 'empty key' }
            [pscustomobject]@{ Key = 'mixed:2'; Value = 'b'; ExpectedVersion = 7 }
            [pscustomobject]@{ Key = 'mixed:3'; Value = 'c' }
        )
        $written = $rows | Set-ReplicationKey -Cluster $cluster -PassThru -ErrorAction SilentlyContinue -ErrorVariable err
        $written.Key | Should -Be @('mixed:1', 'mixed:3')
        $err.FullyQualifiedErrorId | Should -Be @(
            'EmptyKey,Replication.PowerShell.Commands.SetReplicationKeyCommand'
            'VersionConflict,Replication.PowerShell.Commands.SetReplicationKeyCommand')
        Get-ReplicationKey -Cluster $cluster -Key 'mixed:2' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
}

Describe 'Bad input' {
    It 'rejects an empty key (EmptyKey)' {
        Set-ReplicationKey -Cluster $cluster -Key '' -Value 'x' -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -Be 'EmptyKey,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
    }

    It 'rejects a key over 1024 UTF-8 bytes (KeyTooLong), counting bytes, not characters' {
        Set-ReplicationKey -Cluster $cluster -Key ('k' * 1024) -Value 'fits'
        Set-ReplicationKey -Cluster $cluster -Key ('k' * 1025) -Value 'x' -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -Be 'KeyTooLong,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        Set-ReplicationKey -Cluster $cluster -Key ([string]::new([char]0xE9, 513)) -Value 'x' -ErrorAction SilentlyContinue -ErrorVariable err2
        $err2[0].FullyQualifiedErrorId | Should -Be 'KeyTooLong,Replication.PowerShell.Commands.SetReplicationKeyCommand'
    }

    It 'rejects a value over 1 MiB (ValueTooLarge) and writes nothing' {
        Set-ReplicationKey -Cluster $cluster -Key 'big' -Value ('v' * (1MB + 1)) -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -Be 'ValueTooLarge,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        $err[0].TargetObject | Should -Be 'big'
        Get-ReplicationKey -Cluster $cluster -Key 'big' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Set-ReplicationKey -Cluster $cluster -Key 'big' -Value ('v' * 1MB)
        (Get-ReplicationKey -Cluster $cluster -Key 'big').Value.Length | Should -Be 1MB
    }

    It 'rejects a non-positive -Timeout (InvalidTimeout)' {
        { Set-ReplicationKey -Cluster $cluster -Key 'a' -Value 'b' -Timeout 0 } |
            Should -Throw -ErrorId 'InvalidTimeout,Replication.PowerShell.Commands.SetReplicationKeyCommand'
    }

    It 'rejects a -Cluster that is neither a cluster nor a name (InvalidClusterArgument)' {
        { Get-ReplicationKey -Cluster 42 -Key 'a' } |
            Should -Throw -ErrorId 'InvalidClusterArgument,Replication.PowerShell.Commands.GetReplicationKeyCommand'
    }
}
