# Invoke-ReplicationFaultDrill in both shapes: an embedded cluster of this session (-Cluster) and three node processes
# the drill starts itself (-NodeProcess). A short drill (CI: 12 s of workload) with all four faults must pass: no
# violation, no acknowledged write lost, no undecided key. The README states that -Duration 60 passes on both; that
# run is too long for CI. That the drill CAN fail (a mutant engine is caught) is asserted by the engine tests
# (tests/Replication.Engine.Tests/Verification/FaultDrillTests.cs), in both shapes too: the mutant is not reachable
# from the cmdlet on purpose.
BeforeDiscovery {
    $script:Shapes = @(@{ Shape = 'Embedded' }, @{ Shape = 'Process' })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
    # The fault plan is a pure function of the seed: this seed's 12-second plan holds every kind of fault, the kill last (a
    # restarted pwsh node process can be slow to answer, and a drill behind its plan skips the faults that would outlast
    # it), which the tests check through the report's Faults.
    $script:DrillSeed = 162
    $script:DrillSeconds = 12
}

Describe 'Invoke-ReplicationFaultDrill (<Shape>)' -ForEach $Shapes {
    BeforeAll {
        if ($Shape -eq 'Embedded') {
            $script:cluster = New-ReplicationCluster -Name 'drill-embedded' -Path (Join-Path $TestDrive 'drill-embedded')
            Set-ReplicationKey -Cluster $script:cluster -Key 'own:1' -Value 'mine'
            $script:report = Invoke-ReplicationFaultDrill -Cluster $script:cluster -Duration $DrillSeconds -Seed $DrillSeed -Clients 4 -Confirm:$false -WarningVariable script:warnings
        }
        else {
            $script:report = Invoke-ReplicationFaultDrill -NodeProcess -Path (Join-Path $TestDrive 'drill-processes') -Duration $DrillSeconds -Seed $DrillSeed -Clients 4 -WarningVariable script:warnings
        }
    }
    AfterAll {
        if ($Shape -eq 'Embedded') { Remove-ReplicationCluster -Cluster $script:cluster -DeleteData -Confirm:$false }
    }

    It 'returns one report that passes: no violation, no acknowledged write lost, nothing undecided' {
        @($report).Count | Should -Be 1
        $report.GetType().FullName | Should -Be 'Replication.ReplicationDrillReport'
        $report.Violations | Should -Be 0 -Because $report.Detail
        $report.AcknowledgedWritesLost | Should -Be 0 -Because $report.Detail
        $report.Undecided | Should -Be 0 -Because $report.Detail
        $report.Passed | Should -BeTrue
        $warnings | Should -BeNullOrEmpty
    }

    It 'ran a real workload under every kind of fault' {
        $report.Target | Should -Be $(if ($Shape -eq 'Embedded') { 'Embedded' } else { 'NodeProcesses' })
        $report.Nodes | Should -Be 3
        # How many operations run is the machine's business (no timed assertions); that writes and reads were answered is not.
        $report.Succeeded | Should -BeGreaterThan 0
        $report.Writes | Should -BeGreaterThan 0
        $report.Reads | Should -BeGreaterThan 0
        $report.KeysChecked | Should -BeGreaterThan 0
        @($report.Faults.Keys | Sort-Object) | Should -Be @('Kill', 'Partition', 'Pause', 'SlowDisk')
        $report.FaultLog.Count | Should -Be ($report.Faults.Values | Measure-Object -Sum).Sum
        $report.LongestUnavailability | Should -BeGreaterThan ([timespan]::Zero)
    }

    It 'names its seed and the command that replays it' {
        $report.Seed | Should -Be $DrillSeed
        $report.Replay | Should -Match "^Invoke-ReplicationFaultDrill -Seed $DrillSeed -Duration $DrillSeconds -Fault Kill,Pause,Partition,SlowDisk -Clients 4"
        if ($Shape -eq 'Process') { $report.Replay | Should -Match ' -NodeProcess' } else { $report.Replay | Should -Match ' -Cluster drill-embedded' }
    }

    It 'shows as a list, and its fault log as a table, with enum names in JSON' {
        $text = $report | Out-String -Width 200
        foreach ($label in 'Passed', 'Seed', 'Operations', 'Faults', 'LongestUnavailability', 'AcknowledgedWritesLost', 'Violations', 'Replay') { $text | Should -Match "(?m)^$label\s+:" }
        ($report.FaultLog | Format-Table | Out-String -Width 200) | Should -Match 'Partition'
        ($report | ConvertTo-Json -Depth 4 | ConvertFrom-Json).FaultLog[0].Kind | Should -BeIn @('Kill', 'Pause', 'Partition', 'SlowDisk')
    }

    It 'cleans up after itself: the drilled cluster as it was, or the node processes and their folder gone' {
        if ($Shape -eq 'Embedded') {
            @(Get-ReplicationNode -Cluster $cluster | Where-Object State -NE 'Running') | Should -BeNullOrEmpty
            (Get-ReplicationKey -Cluster $cluster -Key 'own:1').Value | Should -Be 'mine'
            @(Get-ReplicationKey -Cluster $cluster -Prefix 'drill-') | Should -BeNullOrEmpty -Because 'the drill deletes its own keys'
        }
        else {
            Test-Path (Join-Path $TestDrive 'drill-processes') | Should -BeFalse
        }
    }
}

Describe 'Invoke-ReplicationFaultDrill errors' {
    It 'refuses a duration out of range with InvalidDrillOptions before anything runs' {
        { Invoke-ReplicationFaultDrill -Duration 2 -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidDrillOptions,*'
        { Invoke-ReplicationFaultDrill -Duration 7200 -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidDrillOptions,*'
    }

    It 'refuses a cluster with fewer than 3 nodes with InvalidDrillOptions' {
        $small = New-ReplicationCluster -Name 'drill-small' -NodeCount 1 -ReplicationFactor 1 -ShardCount 1 -Path (Join-Path $TestDrive 'drill-small')
        try {
            { Invoke-ReplicationFaultDrill -Cluster $small -Duration 5 -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidDrillOptions,*'
        }
        finally { Remove-ReplicationCluster -Cluster $small -DeleteData -Confirm:$false }
    }

    It 'does nothing with -WhatIf' {
        $c = New-ReplicationCluster -Name 'drill-whatif' -Path (Join-Path $TestDrive 'drill-whatif')
        try {
            Invoke-ReplicationFaultDrill -Cluster $c -Duration 5 -WhatIf | Should -BeNullOrEmpty
            @(Get-ReplicationKey -Cluster $c) | Should -BeNullOrEmpty
        }
        finally { Remove-ReplicationCluster -Cluster $c -DeleteData -Confirm:$false }
        Invoke-ReplicationFaultDrill -Path (Join-Path $TestDrive 'drill-whatif-temp') -Duration 5 -WhatIf | Should -BeNullOrEmpty
        Test-Path (Join-Path $TestDrive 'drill-whatif-temp') | Should -BeFalse
    }
}
