# The module as an experienced dbatools / FailoverClusters user drives it (issue 12): timeouts in
# seconds, CSV round trips, pipelines between cmdlets, -ErrorAction Stop, non-string values, tab
# completion, verbose and progress output, readable objects. Each Describe names the issue item it pins.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
    $script:Op = New-ReplicationCluster -Name 'op' -Path (Join-Path $TestDrive 'op')
    Wait-ReplicationLeader -Cluster $script:Op | Out-Null

    function Get-Completion([string] $Line) {
        # The completion texts PowerShell offers at the end of $Line.
        @((TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches.CompletionText)
    }
}
AfterAll {
    Remove-AllReplicationClusters
}

Describe 'Item 1: -Timeout is in seconds' {
    It 'takes -Timeout 5 as five seconds on a healthy cluster' {
        @(Wait-ReplicationLeader -Cluster $script:Op -Timeout 5).Count | Should -Be $script:Op.ShardCount
        (Set-ReplicationKey -Cluster $script:Op -Key 't:1' -Value 'x' -Timeout 5 -PassThru).Version | Should -Be 1
        (Get-ReplicationKey -Cluster $script:Op -Key 't:1' -Timeout '5').Value | Should -Be 'x'
    }

    It 'waits about -Timeout seconds for a quorum that is gone (not ticks, not days), also given as a TimeSpan' {
        $lost = New-ReplicationCluster -Name 'op-lost' -Path (Join-Path $TestDrive 'op-lost') -ShardCount 1
        try {
            Wait-ReplicationLeader -Cluster $lost | Out-Null
            Stop-ReplicationNode -Cluster $lost -Id 2, 3 -Kill -Confirm:$false | Out-Null
            foreach ($timeout in @(1, [timespan]::FromSeconds(1), '1')) {
                $watch = [Diagnostics.Stopwatch]::StartNew()
                Set-ReplicationKey -Cluster $lost -Key 'nobody' -Value 'hears' -Timeout $timeout -ErrorAction SilentlyContinue -ErrorVariable err
                $watch.Stop()
                $err[0].FullyQualifiedErrorId | Should -BeLike 'QuorumUnavailable,*'
                $watch.Elapsed.TotalSeconds | Should -BeGreaterOrEqual 0.9 -Because "-Timeout $timeout is one second"
                $watch.Elapsed.TotalSeconds | Should -BeLessThan 20
            }
        }
        finally { Remove-ReplicationCluster -Cluster $lost -DeleteData -Confirm:$false }
    }

    It 'declares every -Timeout of every cmdlet as seconds ([double])' {
        $timeouts = Get-Command -Module Replication | ForEach-Object { $_.Parameters['Timeout'] } | Where-Object { $_ }
        $timeouts | Should -Not -BeNullOrEmpty
        foreach ($t in $timeouts) { $t.ParameterType | Should -Be ([double]) }
    }

    It 'still refuses a zero or negative -Timeout (InvalidTimeout)' {
        { Wait-ReplicationLeader -Cluster $script:Op -Timeout 0 } |
            Should -Throw -ErrorId 'InvalidTimeout,Replication.PowerShell.Commands.WaitReplicationLeaderCommand'
        { Get-ReplicationKey -Cluster $script:Op -Key 'a' -Timeout -1 } |
            Should -Throw -ErrorId 'InvalidTimeout,Replication.PowerShell.Commands.GetReplicationKeyCommand'
    }
}

Describe 'Item 2: a blank ExpectedVersion means no condition' {
    It 'updates an existing key from a CSV row whose ExpectedVersion cell is blank, and honours a 0' {
        Set-ReplicationKey -Cluster $script:Op -Key 'csv:1' -Value 'one'
        $csv = Join-Path $TestDrive 'blank.csv'
        Set-Content $csv -Value "Key,Value,ExpectedVersion`ncsv:1,uno,`ncsv:2,dos,0`ncsv:3,tres, "
        Import-Csv $csv | Set-ReplicationKey -Cluster $script:Op -ErrorVariable err
        $err | Should -BeNullOrEmpty
        $one = Get-ReplicationKey -Cluster $script:Op -Key 'csv:1'
        $one.Value | Should -Be 'uno'
        $one.Version | Should -Be 2
        (Get-ReplicationKey -Cluster $script:Op -Key 'csv:2').Value | Should -Be 'dos'
        (Get-ReplicationKey -Cluster $script:Op -Key 'csv:3').Value | Should -Be 'tres'
        # The 0 in csv:2's row is still a condition.
        "Key,Value,ExpectedVersion`ncsv:2,again,0" | ConvertFrom-Csv | Set-ReplicationKey -Cluster $script:Op -ErrorAction SilentlyContinue -ErrorVariable conflict
        $conflict[0].FullyQualifiedErrorId | Should -BeLike 'VersionConflict,*'
    }

    It 'deletes from a CSV whose ExpectedVersion cells are blank, and takes -ExpectedVersion $null as no condition' {
        Set-ReplicationKey -Cluster $script:Op -Key 'csvdel:1' -Value 'x'
        Set-ReplicationKey -Cluster $script:Op -Key 'csvdel:2' -Value 'x'
        "Key,ExpectedVersion`ncsvdel:1,`ncsvdel:2," | ConvertFrom-Csv | Remove-ReplicationKey -Cluster $script:Op -Confirm:$false -ErrorVariable err
        $err | Should -BeNullOrEmpty
        Get-ReplicationKey -Cluster $script:Op -Prefix 'csvdel:' | Should -BeNullOrEmpty
        Set-ReplicationKey -Cluster $script:Op -Key 'csvdel:1' -Value 'y' -ExpectedVersion $null
        (Get-ReplicationKey -Cluster $script:Op -Key 'csvdel:1').Value | Should -Be 'y'
    }
}

Describe 'Item 3: a piped Cluster property and the current cluster' {
    BeforeAll {
        $script:Source = New-ReplicationCluster -Name 'op-src' -Path (Join-Path $TestDrive 'op-src') -ShardCount 2
        Wait-ReplicationLeader -Cluster $script:Source | Out-Null
        1..3 | ForEach-Object { [pscustomobject]@{ Key = "exp:$_"; Value = "v$_" } } | Set-ReplicationKey -Cluster $script:Source
        $script:Csv = Join-Path $TestDrive 'exported.csv'
        Get-ReplicationKey -Cluster $script:Source -Prefix 'exp:' | Export-Csv $script:Csv
        $script:Target = New-ReplicationCluster -Name 'op-dst' -Path (Join-Path $TestDrive 'op-dst') -ShardCount 2   # now the current cluster
        Wait-ReplicationLeader -Cluster $script:Target | Out-Null
    }
    AfterAll {
        Remove-ReplicationCluster -Cluster $script:Source -DeleteData -Confirm:$false
        Remove-ReplicationCluster -Cluster $script:Target -DeleteData -Confirm:$false
    }

    It 'refuses rows whose Cluster column names another cluster than the current one (ClusterMismatch), writing nothing' {
        (Import-Csv $script:Csv)[0].Cluster | Should -Be 'op-src'
        { Import-Csv $script:Csv | ForEach-Object { $_.Value = 'changed'; $_ } | Set-ReplicationKey -ErrorAction Stop } |
            Should -Throw -ErrorId 'ClusterMismatch,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        (Get-ReplicationKey -Cluster $script:Source -Prefix 'exp:').Value | Should -Be @('v1', 'v2', 'v3')
        Get-ReplicationKey -Cluster $script:Target -Prefix 'exp:' | Should -BeNullOrEmpty
        # The same for a JSON round trip.
        { Get-ReplicationKey -Cluster $script:Source -Prefix 'exp:' | ConvertTo-Json | ConvertFrom-Json | Remove-ReplicationKey -Confirm:$false } |
            Should -Throw -ErrorId 'ClusterMismatch,Replication.PowerShell.Commands.RemoveReplicationKeyCommand'
        @(Get-ReplicationKey -Cluster $script:Source -Prefix 'exp:').Count | Should -Be 3
    }

    It 'writes the rows where -Cluster says, whatever their Cluster column holds' {
        Import-Csv $script:Csv | Set-ReplicationKey -Cluster $script:Target
        (Get-ReplicationKey -Cluster $script:Target -Prefix 'exp:').Value | Should -Be @('v1', 'v2', 'v3')
    }

    It 'still routes live objects piped from another cluster to their own cluster' {
        Get-ReplicationKey -Cluster $script:Source -Key 'exp:1' | Set-ReplicationKey -Value 'routed'
        (Get-ReplicationKey -Cluster $script:Source -Key 'exp:1').Value | Should -Be 'routed'
        (Get-ReplicationKey -Cluster $script:Target -Key 'exp:1').Value | Should -Be 'v1'
    }
}

Describe 'Item 4: -WriteConcern Leader -PassThru' {
    It 'writes the keys it acknowledged, with their shard and log index (Version 0: not applied yet)' {
        $written = 'lead:1', 'lead:2' | ForEach-Object { [pscustomobject]@{ Key = $_; Value = 'v' } } |
            Set-ReplicationKey -Cluster $script:Op -WriteConcern Leader -PassThru
        $written | Should -HaveCount 2
        $written.Key | Should -Be @('lead:1', 'lead:2')
        foreach ($k in $written) {
            $k.Index | Should -BeGreaterThan 0
            $k.Shard | Should -Be (Get-ReplicationShard -Cluster $script:Op -Key $k.Key).Id
            $k.Value | Should -Be 'v'
            $k.Version | Should -Be 0
        }
    }

    It 'refuses a conditional write with -WriteConcern Leader (its outcome is known only once applied)' {
        Set-ReplicationKey -Cluster $script:Op -Key 'lead:cond' -Value 'v' -ExpectedVersion 0 -WriteConcern Leader -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -Be 'InvalidWriteConcern,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        Get-ReplicationKey -Cluster $script:Op -Key 'lead:cond' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
}

Describe 'Item 5: -ErrorAction Stop stops a piped batch at the failing item' {
    It 'writes the items before an invalid key and none after it' {
        $rows = 'stop:1', '', 'stop:3' | ForEach-Object { [pscustomobject]@{ Key = $_; Value = 'v' } }
        { $rows | Set-ReplicationKey -Cluster $script:Op -ErrorAction Stop } |
            Should -Throw -ErrorId 'EmptyKey,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        (Get-ReplicationKey -Cluster $script:Op -Key 'stop:1').Value | Should -Be 'v'
        Get-ReplicationKey -Cluster $script:Op -Key 'stop:3' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'writes the items before a version conflict and none after it, also under $ErrorActionPreference = Stop' {
        $rows = @(
            [pscustomobject]@{ Key = 'stopv:1'; Value = 'v' }
            [pscustomobject]@{ Key = 'stopv:2'; Value = 'v'; ExpectedVersion = 9 }
            [pscustomobject]@{ Key = 'stopv:3'; Value = 'v' }
        )
        {
            $ErrorActionPreference = 'Stop'
            $rows | Set-ReplicationKey -Cluster $script:Op
        } | Should -Throw -ErrorId 'VersionConflict,Replication.PowerShell.Commands.SetReplicationKeyCommand'
        (Get-ReplicationKey -Cluster $script:Op -Key 'stopv:1').Value | Should -Be 'v'
        Get-ReplicationKey -Cluster $script:Op -Key 'stopv:3' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'goes on past a bad item without Stop, reporting errors in input order' {
        $rows = 'go:1', '', 'go:3' | ForEach-Object { [pscustomobject]@{ Key = $_; Value = 'v' } }
        $written = $rows | Set-ReplicationKey -Cluster $script:Op -PassThru -ErrorAction SilentlyContinue -ErrorVariable err
        $written.Key | Should -Be @('go:1', 'go:3')
        $err | Should -HaveCount 1
    }
}

Describe 'Item 6: piping clusters and plain key names' {
    It 'takes a piped cluster object in Get-ReplicationNode, Get-ReplicationShard, Get-ReplicationKey and Wait-ReplicationLeader' {
        Set-ReplicationKey -Cluster $script:Op -Key 'pipe6:a' -Value 'a'
        $nodes = @(Get-ReplicationCluster -Name 'op' | Get-ReplicationNode)
        $nodes.Count | Should -Be 3
        $nodes.Cluster | Sort-Object -Unique | Should -Be 'op'
        @(Get-ReplicationCluster -Name 'op' | Get-ReplicationShard).Count | Should -Be $script:Op.ShardCount
        $keys = @(Get-ReplicationCluster -Name 'op' | Get-ReplicationKey -ErrorVariable err)
        $err | Should -BeNullOrEmpty
        $keys.Key | Should -Contain 'pipe6:a'
        @(Get-ReplicationCluster -Name 'op' | Get-ReplicationKey -Prefix 'pipe6:').Key | Should -Be @('pipe6:a')
        @(Get-ReplicationCluster -Name 'op' | Wait-ReplicationLeader -Timeout 10).Count | Should -Be $script:Op.ShardCount
    }

    It 'deletes piped key names (strings), as Get-ReplicationKey reads them' {
        Set-ReplicationKey -Cluster $script:Op -Key 'p1' -Value '1'
        Set-ReplicationKey -Cluster $script:Op -Key 'p4' -Value '4'
        'p1', 'p4' | Remove-ReplicationKey -Cluster $script:Op -Confirm:$false -ErrorVariable err
        $err | Should -BeNullOrEmpty
        'p1', 'p4' | Get-ReplicationKey -Cluster $script:Op -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'never takes a piped cluster object for a key name' {
        Set-ReplicationKey -Cluster $script:Op -Key 'op' -Value 'a key named like the cluster'
        Get-ReplicationCluster -Name 'op' | Remove-ReplicationKey -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -Be 'InvalidPipelineInput,Replication.PowerShell.Commands.RemoveReplicationKeyCommand'
        (Get-ReplicationKey -Cluster $script:Op -Key 'op').Value | Should -Be 'a key named like the cluster'
    }
}

Describe 'Item 7: Get-ReplicationShard -Key says which key each shard answers' {
    It 'writes one shard per key, carrying the key, in input order' {
        $one = Set-ReplicationKey -Cluster $script:Op -Key 'user:1' -Value 'a' -PassThru
        $two = Set-ReplicationKey -Cluster $script:Op -Key 'user:2' -Value 'b' -PassThru
        $shards = @(Get-ReplicationShard -Cluster $script:Op -Key 'user:1', 'user:2')
        $shards.Key | Should -Be @('user:1', 'user:2')
        $shards[0].Id | Should -Be $one.Shard
        $shards[1].Id | Should -Be $two.Shard
        ($shards | Format-Table | Out-String) | Should -Match 'user:2'
        # Asking twice for one shard gives two objects with their own keys.
        @(Get-ReplicationShard -Cluster $script:Op -Key 'user:1', 'user:1x', 'user:1').Key | Should -Be @('user:1', 'user:1x', 'user:1')
    }
}

Describe 'Item 8: non-string values' {
    It 'refuses a hashtable, an array or a custom object (ValueNotText) and writes nothing' {
        foreach ($value in @(@{ a = 1 }), (, @(1, 2)), ([pscustomobject]@{ a = 1 })) {
            Set-ReplicationKey -Cluster $script:Op -Key 'val:bad' -Value $value -ErrorAction SilentlyContinue -ErrorVariable err
            $err[0].FullyQualifiedErrorId | Should -Be 'ValueNotText,Replication.PowerShell.Commands.SetReplicationKeyCommand'
            $err[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
            $err[0].Exception.Message | Should -Match 'ConvertTo-Json'
        }
        Get-ReplicationKey -Cluster $script:Op -Key 'val:bad' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'stores numbers, booleans and dates culture-invariantly (dates as ISO 8601)' {
        $culture = [cultureinfo]::CurrentCulture
        try {
            [cultureinfo]::CurrentCulture = [cultureinfo]'de-DE'
            Set-ReplicationKey -Cluster $script:Op -Key 'val:date' -Value ([datetime]::new(2026, 1, 2, 3, 4, 5, [DateTimeKind]::Utc))
            Set-ReplicationKey -Cluster $script:Op -Key 'val:offset' -Value ([datetimeoffset]::new(2026, 1, 2, 3, 4, 5, [timespan]::FromHours(2)))
            Set-ReplicationKey -Cluster $script:Op -Key 'val:double' -Value 1.5
            Set-ReplicationKey -Cluster $script:Op -Key 'val:int' -Value 42
            Set-ReplicationKey -Cluster $script:Op -Key 'val:bool' -Value $true
        }
        finally { [cultureinfo]::CurrentCulture = $culture }
        (Get-ReplicationKey -Cluster $script:Op -Key 'val:date').Value | Should -Be '2026-01-02T03:04:05.0000000Z'
        (Get-ReplicationKey -Cluster $script:Op -Key 'val:offset').Value | Should -Be '2026-01-02T03:04:05.0000000+02:00'
        (Get-ReplicationKey -Cluster $script:Op -Key 'val:double').Value | Should -Be '1.5'
        (Get-ReplicationKey -Cluster $script:Op -Key 'val:int').Value | Should -Be '42'
        (Get-ReplicationKey -Cluster $script:Op -Key 'val:bool').Value | Should -Be 'True'
    }

    It 'fails only the piped row whose Value is not text' {
        $rows = @(
            [pscustomobject]@{ Key = 'val:row1'; Value = 'fine' }
            [pscustomobject]@{ Key = 'val:row2'; Value = @{ nested = $true } }
            [pscustomobject]@{ Key = 'val:row3'; Value = 'fine too' }
        )
        $written = $rows | Set-ReplicationKey -Cluster $script:Op -PassThru -ErrorAction SilentlyContinue -ErrorVariable err
        $written.Key | Should -Be @('val:row1', 'val:row3')
        $err | Should -HaveCount 1
        $err[0].TargetObject | Should -Be 'val:row2'
    }
}

Describe 'Item 9: one family of readable output objects' {
    It 'names every output type Replication.<Name>' {
        $script:Op.GetType().FullName | Should -Be 'Replication.ReplicationCluster'
        (Get-ReplicationNode -Cluster $script:Op)[0].GetType().FullName | Should -Be 'Replication.ReplicationNode'
        (Get-ReplicationShard -Cluster $script:Op)[0].GetType().FullName | Should -Be 'Replication.ReplicationShard'
        (Set-ReplicationKey -Cluster $script:Op -Key 'fam:1' -Value 'x' -PassThru).GetType().FullName | Should -Be 'Replication.ReplicationKey'
        foreach ($command in Get-Command -Module Replication) {
            # [bool]: a -Quiet switch answers yes or no, as Test-Connection -Quiet and Test-Path do.
            foreach ($type in $command.OutputType.Type | Where-Object { $_ -and $_ -ne [void] -and $_ -ne [IO.FileInfo] -and $_ -ne [bool] }) {
                $type.Namespace | Should -Be 'Replication' -Because "$($command.Name) writes $($type.FullName)"
            }
        }
    }

    It 'writes enum values as names in ConvertTo-Json, for the cluster and its nodes alike' {
        $json = $script:Op | ConvertTo-Json -Depth 3 | ConvertFrom-Json
        $json.Mode | Should -Be 'Embedded'
        $json.State | Should -Be 'Running'
        $json.Nodes[0].State | Should -Be 'Running'
        ((Get-ReplicationNode -Cluster $script:Op)[0] | ConvertTo-Json | ConvertFrom-Json).State | Should -Be 'Running'
    }

    It 'shows read-only properties (no setters) in Get-Member' {
        $objects = @(
            $script:Op
            (Get-ReplicationNode -Cluster $script:Op)[0]
            (Get-ReplicationShard -Cluster $script:Op)[0]
            (Get-ReplicationKey -Cluster $script:Op -Key 'fam:1')
        )
        foreach ($o in $objects) {
            $properties = $o | Get-Member -MemberType Property
            $properties | Should -Not -BeNullOrEmpty
            $properties | Where-Object Definition -Match 'set;' | ForEach-Object Name | Should -BeNullOrEmpty -Because $o.GetType().Name
        }
        { $node = (Get-ReplicationNode -Cluster $script:Op)[0]; $node.State = 'Stopped' } | Should -Throw
    }

    It 'lists nested collections readably in Format-List' {
        $text = $script:Op | Format-List | Out-String -Width 200
        $text | Should -Not -Match 'ReplicationNode \{'
        $text | Should -Match 'Nodes\s+:\s+\{?1 \(Running'
    }

    It 'fits the node table into 80 columns, keeping LagEntries' {
        $lines = @((Get-ReplicationNode -Cluster $script:Op | Format-Table | Out-String -Width 80) -split '\r?\n' | Where-Object { $_.Trim() })
        $lines[0] | Should -Match 'LagEntries'
        foreach ($line in $lines) { $line.Length | Should -BeLessOrEqual 80 }
        ($script:Op | Format-Table | Out-String -Width 80) | Should -Not -Match '…'
    }

    It 'sorts voters and learners' {
        foreach ($shard in Get-ReplicationShard -Cluster $script:Op) {
            ($shard.Voters -join ',') | Should -Be (($shard.Voters | Sort-Object) -join ',')
        }
    }

    It 'has format and type data for every output type, and 64-bit enums (written by name in JSON)' {
        # Every type a cmdlet declares it writes, and the Replication types their properties hold (a backup's shards...).
        $types = [System.Collections.Generic.HashSet[type]]::new()
        $queue = [System.Collections.Generic.Queue[type]]::new()
        foreach ($t in (Get-Command -Module Replication).OutputType.Type | Where-Object { $_ -and $_.Namespace -eq 'Replication' }) { $queue.Enqueue($t) }
        while ($queue.Count) {
            $t = $queue.Dequeue()
            if (-not $types.Add($t)) { continue }
            foreach ($p in $t.GetProperties()) {
                $inner = if ($p.PropertyType.IsGenericType) { $p.PropertyType.GetGenericArguments()[0] } elseif ($p.PropertyType.IsArray) { $p.PropertyType.GetElementType() } else { $p.PropertyType }
                $inner = [Nullable]::GetUnderlyingType($inner) ?? $inner
                if ($inner.Namespace -eq 'Replication' -and -not $inner.IsEnum) { $queue.Enqueue($inner) }
                if ($inner.IsEnum) { [Enum]::GetUnderlyingType($inner) | Should -Be ([long]) -Because "$($t.Name).$($p.Name) is written by ConvertTo-Json by name only when its enum is 64-bit" }
            }
        }
        $types.Count | Should -BeGreaterOrEqual 9
        foreach ($type in $types.FullName) {
            Get-FormatData -TypeName $type | Should -Not -BeNullOrEmpty -Because "$type needs a view in module/Replication.format.ps1xml"
            Get-TypeData -TypeName $type | Should -Not -BeNullOrEmpty -Because "$type needs type data in module/Replication.types.ps1xml"
        }
    }
}

Describe 'Item 10: tab completion from the live cluster' {
    It 'completes node ids, shard ids, keys and prefixes' {
        Set-ReplicationKey -Cluster $script:Op -Key 'comp:alpha' -Value 'a'
        Set-ReplicationKey -Cluster $script:Op -Key 'comp:beta' -Value 'b'
        Get-Completion 'Get-ReplicationNode -Cluster op -Id ' | Should -Be @('1', '2', '3')
        Get-Completion 'Stop-ReplicationNode -Cluster op -Id 2' | Should -Be @('2')
        Get-Completion 'Get-ReplicationShard -Cluster op -Id ' | Should -Be @(0..($script:Op.ShardCount - 1) | ForEach-Object { "$_" })
        Get-Completion 'Wait-ReplicationLeader -Cluster op -Shard ' | Should -Contain '0'
        Get-Completion 'Get-ReplicationKey -Cluster op -Key comp:' | Should -Be @('comp:alpha', 'comp:beta')
        Get-Completion 'Remove-ReplicationKey -Cluster op -Key comp:b' | Should -Be @('comp:beta')
        Get-Completion 'Get-ReplicationKey -Cluster op -Prefix comp:a' | Should -Be @('comp:alpha')
    }

    It 'completes from the cluster named by -Cluster, and bounds a key completion' {
        $small = New-ReplicationCluster -Name 'op-one' -NodeCount 1 -ReplicationFactor 1 -ShardCount 1 -Path (Join-Path $TestDrive 'op-one')
        try {
            Wait-ReplicationLeader -Cluster $small | Out-Null
            Get-Completion 'Get-ReplicationNode -Cluster op-one -Id ' | Should -Be @('1')
            1..150 | ForEach-Object { [pscustomobject]@{ Key = 'many:{0:d3}' -f $_; Value = 'v' } } | Set-ReplicationKey -Cluster $small
            $many = Get-Completion 'Get-ReplicationKey -Cluster op-one -Key many:'
            $many.Count | Should -BeLessOrEqual 100
            $many[0] | Should -Be 'many:001'
        }
        finally { Remove-ReplicationCluster -Cluster $small -DeleteData -Confirm:$false }
    }

    It 'has a completer on every node, shard, key and cluster parameter of every cmdlet' {
        $expected = @{ Cluster = 'ClusterNameCompleter'; Node = 'NodeIdCompleter'; Shard = 'ShardIdCompleter'; Key = 'KeyCompleter'; Prefix = 'KeyCompleter' }
        foreach ($command in Get-Command -Module Replication) {
            foreach ($parameter in $command.Parameters.Values | Where-Object ParameterType -NE ([switch])) {
                $kind = switch -Regex ($parameter.Name) {
                    '^(Cluster)$' { 'Cluster' }
                    '^(Node|ToNode|FromNode|TargetNode)$' { 'Node' }
                    '^(Shard)$' { 'Shard' }
                    '^(Key)$' { 'Key' }
                    '^(Prefix)$' { 'Prefix' }
                    '^Id$' { if ($command.Noun -eq 'ReplicationNode') { 'Node' } elseif ($command.Noun -eq 'ReplicationShard') { 'Shard' } }
                }
                if (-not $kind) { continue }
                $completer = $parameter.Attributes | Where-Object { $_ -is [System.Management.Automation.ArgumentCompleterAttribute] }
                $completer.Type.Name | Should -Be $expected[$kind] -Because "$($command.Name) -$($parameter.Name)"
            }
        }
    }
}

Describe 'Item 11: prompts, progress, verbose output and errors that can be caught' {
    It 'restores into a new cluster without prompting, even at $ConfirmPreference = Medium (as New-ReplicationCluster)' {
        $backup = Backup-ReplicationCluster -Cluster $script:Op -Path (Join-Path $TestDrive 'op-backup')
        $ConfirmPreference = 'Medium'
        # A prompt in this non-interactive host would throw.
        $restored = Restore-ReplicationCluster -Path $backup.Path -Name 'op-copy' -ClusterPath (Join-Path $TestDrive 'op-copy')
        try { $restored.Name | Should -Be 'op-copy' }
        finally { Remove-ReplicationCluster -Cluster $restored -DeleteData -Confirm:$false }
    }

    It 'shows progress while Test-ReplicationBackup verifies' {
        $path = Join-Path $TestDrive 'op-backup'
        if (-not (Test-Path $path)) { Backup-ReplicationCluster -Cluster $script:Op -Path $path | Out-Null }
        $ps = [powershell]::Create()
        try {
            [void]$ps.AddScript("Import-Module '$Manifest'; `$ProgressPreference = 'Continue'; Test-ReplicationBackup -Path '$path'")
            $result = $ps.Invoke()
            $result[0].Valid | Should -BeTrue
            $ps.Streams.Progress.Count | Should -BeGreaterThan 0
            $ps.Streams.Progress[0].Activity | Should -Match 'backup'
        }
        finally { $ps.Dispose() }
    }

    It 'writes verbose messages from Wait-ReplicationLeader and Start-ReplicationNode -Id' {
        $verbose = Wait-ReplicationLeader -Cluster $script:Op -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        $verbose | Should -Not -BeNullOrEmpty
        $verbose = Start-ReplicationNode -Cluster $script:Op -Id 1 -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        $verbose | Should -Not -BeNullOrEmpty
    }

    It 'raises ONE terminating error that try/catch sees when no shard can be checked' {
        $dead = New-ReplicationCluster -Name 'op-dead' -Path (Join-Path $TestDrive 'op-dead')
        try {
            Wait-ReplicationLeader -Cluster $dead | Out-Null
            Stop-ReplicationNode -Cluster $dead -Id 2, 3 -Kill -Confirm:$false | Out-Null
            $caught = $null
            $ErrorActionPreference = 'Continue'   # as at a prompt: per-shard errors would be non-terminating
            try { Test-ReplicationConsistency -Cluster $dead -Timeout ([timespan]::FromSeconds(2)) -ErrorVariable err | Out-Null }
            catch { $caught = $_ }
            $caught | Should -Not -BeNullOrEmpty
            $caught.FullyQualifiedErrorId | Should -BeLike 'QuorumUnavailable,*'
            $caught.Exception.Message | Should -Match 'shard 0'
            $err | Should -HaveCount 1
        }
        finally { Remove-ReplicationCluster -Cluster $dead -DeleteData -Confirm:$false }
    }
}

Describe 'Item 12: help that runs on every platform, an about topic and related links' {
    It 'uses no $env:TEMP in examples (empty on Linux)' {
        foreach ($command in Get-Command -Module Replication) {
            foreach ($example in @((Get-Help $command.Name).examples.example)) {
                "$($example.code)" | Should -Not -Match '\$env:TEMP' -Because "$($command.Name) $($example.title)"
            }
        }
    }

    It 'has an about_Replication topic' {
        $about = Get-Help about_Replication | Out-String
        foreach ($topic in 'Embedded', 'Linearizable', 'Majority', 'Planned', 'Hot', 'ring', 'TLS') {
            $about | Should -Match $topic
        }
    }

    It 'lists related links on every cmdlet, about_Replication among them' {
        foreach ($command in Get-Command -Module Replication) {
            $links = @((Get-Help $command.Name).relatedLinks.navigationLink.linkText)
            $links | Should -Contain 'about_Replication' -Because $command.Name
            $links.Count | Should -BeGreaterThan 1 -Because $command.Name
        }
    }
}
