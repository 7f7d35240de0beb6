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
