# Invoke-ReplicationFailover -AllowDataLoss (forced recovery after a permanent loss of quorum) in both shapes
# (Shapes.ps1): refused while a quorum answers; after two of a shard's three voters are killed and their folders
# deleted, the survivor becomes the only voter with its data, reports the loss window, records an event, and the shard
# grows back to three voters on the live nodes once the lost ones are removed. Five nodes: the metadata group (five
# voters) keeps its quorum. Every wait is a condition with a bound.
BeforeDiscovery {
    $script:Shapes = @(@{ Shape = 'Embedded' }, @{ Shape = 'Process' })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    . (Join-Path $PSScriptRoot 'Shapes.ps1')
    Import-Module $Manifest -Force

    function Wait-ShardSettled {
        # Shard 0 has a leader and three voters on its placement, and the ring wants no move (its placement is computed from
        # every registered node: the placement a status shows can lag a node that just registered).
        param([Parameter(Mandatory)] $Cluster)
        Wait-Condition -Timeout '00:01:00' -Because 'shard 0 is settled on its placement and the ring wants no move' -Condition {
            $s = Get-ReplicationShard -Cluster $Cluster -Id 0
            $s.Leader -ne 0 -and $s.Voters.Count -eq 3 -and -not (Compare-Object @($s.Voters) @($s.Placement)) -and
                @(Invoke-ReplicationRebalance -Cluster $Cluster -WhatIf).Count -eq 0
        }
    }
}

Describe 'Invoke-ReplicationFailover -AllowDataLoss (<Shape>)' -ForEach $Shapes {
    BeforeAll {
        $script:cluster = New-TestCluster -Shape $Shape -Name "forced-$($Shape.ToLower())" -Root $TestDrive -NodeCount 5 -ShardCount 1
        # The ring may still move the shard just after the cluster formed: act on a placement that holds still.
        Wait-ShardSettled -Cluster $cluster
        0..19 | ForEach-Object { Set-ReplicationKey -Cluster $cluster -Key "fr:$_" -Value "v$_" }
    }
    AfterAll { Remove-TestCluster -Cluster $script:cluster }

    It 'is refused with QuorumAvailable while a quorum of the shard''s voters answers, and forces nothing' {
        Invoke-ReplicationFailover -Cluster $cluster -Shard 0 -AllowDataLoss -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable refused |
            Should -BeNullOrEmpty
        $refused | Should -HaveCount 1
        $refused[0].FullyQualifiedErrorId | Should -Be 'QuorumAvailable,Replication.PowerShell.Commands.InvokeReplicationFailoverCommand'
        (Get-ReplicationShard -Cluster $cluster -Id 0).Voters.Count | Should -Be 3
    }

    It 'brings the shard back from the survivor after two of three voters are killed and their folders deleted, and re-grows it' {
        # Read the voters to kill from a placement that holds still: killing two nodes the shard is moving away from
        # leaves its new majority alive, and the force is then rightly refused (seen once at load 14: right after the two
        # kills the force found the shard's voters to be 1, 2, 5 with two of them answering).
        Wait-ShardSettled -Cluster $cluster
        $shard = Get-ReplicationShard -Cluster $cluster -Id 0
        $voters = @($shard.Voters | Sort-Object)
        $survivor = $voters[0]
        $lost = @($voters | Select-Object -Skip 1)
        Wait-Condition -Because "node $survivor has applied every write" -Condition {
            (Get-ReplicationNode -Cluster $cluster -Id $survivor).AppliedIndex -ge (Get-ReplicationShard -Cluster $cluster -Id 0).CommitIndex
        }
        $committed = (Get-ReplicationShard -Cluster $cluster -Id 0).CommitIndex
        foreach ($id in $lost) {
            $folder = (Get-ReplicationNode -Cluster $cluster -Id $id).DataPath
            Stop-TestNodeHard -Cluster $cluster -Id $id
            Remove-Item -Recurse -Force $folder
        }
        Wait-Condition -Because "nodes $($lost -join ', ') show down" -Condition {
            -not (Get-ReplicationNode -Cluster $cluster | Where-Object { $_.Id -in $lost -and $_.State -eq 'Running' })
        }

        $result = Invoke-ReplicationFailover -Cluster $cluster -Shard 0 -AllowDataLoss -Confirm:$false
        $result | Should -BeOfType ([Replication.ReplicationFailover])
        $result.Kind | Should -Be 'Forced'
        $result.NewLeader | Should -Be $survivor
        $result.LostEntries | Should -BeNullOrEmpty -Because 'what the lost majority alone had is unknown, not 0'
        $result.SurvivorLastIndex | Should -BeGreaterOrEqual $committed
        $result.SurvivorLastTerm | Should -BeGreaterThan 0
        $result.Detail | Should -Match "after index $($result.SurvivorLastIndex) that was acknowledged by the lost majority"

        0..19 | ForEach-Object { (Get-ReplicationKey -Cluster $cluster -Key "fr:$_").Value | Should -Be "v$_" }
        Set-ReplicationKey -Cluster $cluster -Key 'fr:after' -Value 'forced'
        @(Get-ReplicationEvent -Cluster $cluster -Type ForcedRecovery -Shard 0 -WarningAction SilentlyContinue | Where-Object Node -EQ $survivor) | Should -Not -BeNullOrEmpty

        # Asked again, the one-voter group has its quorum.
        Invoke-ReplicationFailover -Cluster $cluster -Shard 0 -AllowDataLoss -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable again | Out-Null
        $again[0].FullyQualifiedErrorId | Should -Be 'QuorumAvailable,Replication.PowerShell.Commands.InvokeReplicationFailoverCommand'

        # The runbook's last step: the lost nodes are removed, the ring places the shard on live nodes, it grows back.
        foreach ($id in $lost) { Remove-ReplicationNode -Cluster $cluster -Id $id -Force -NoWait -Confirm:$false }
        $live = @(1..5 | Where-Object { $_ -notin $lost })
        Wait-Condition -Timeout '00:02:00' -Because 'shard 0 has three voters again, all on live nodes' -Condition {
            $s = Get-ReplicationShard -Cluster $cluster -Id 0
            $s.Leader -ne 0 -and $s.Voters.Count -eq 3 -and -not ($s.Voters | Where-Object { $_ -notin $live })
        }
        (Get-ReplicationKey -Cluster $cluster -Key 'fr:after').Value | Should -Be 'forced'
        0..19 | ForEach-Object { (Get-ReplicationKey -Cluster $cluster -Key "fr:$_").Value | Should -Be "v$_" }
    }
}
