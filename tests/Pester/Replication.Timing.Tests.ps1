# Raft timing as a setting (issue 10, item 8): -ElectionTimeout and -HeartbeatInterval on New-ReplicationCluster and on
# Start-ReplicationNode -Path -Listen. A cluster started with other values elects leaders and serves; values the Raft core
# would refuse are refused before anything starts, with ErrorId InvalidClusterOptions.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
    $script:secret = ConvertTo-SecureString 'timing-secret' -AsPlainText -Force
}

Describe 'Raft timing settings' {
    AfterAll { Remove-AllReplicationClusters }

    It 'runs an embedded cluster with a 1000 ms election timeout and a 100 ms heartbeat' {
        $c = New-ReplicationCluster -Name 'timing-slow' -Path (Join-Path $TestDrive 'timing-slow') -ShardCount 2 -ElectionTimeout 1000 -HeartbeatInterval 100
        Wait-ReplicationLeader -Cluster $c -Timeout 60 | Out-Null
        1..20 | ForEach-Object { Set-ReplicationKey -Cluster $c -Key "timing:$_" -Value "$_" }
        @(Get-ReplicationKey -Cluster $c -Prefix 'timing:') | Should -HaveCount 20
        # A node restarted inside the cluster runs with the same timing and catches up.
        Stop-ReplicationNode -Cluster $c -Id 2 -Confirm:$false | Out-Null
        Set-ReplicationKey -Cluster $c -Key 'timing:while-down' -Value 'x'
        Start-ReplicationNode -Cluster $c -Id 2 | Out-Null
        Wait-ReplicationLeader -Cluster $c -Timeout 60 | Out-Null
        (Get-ReplicationKey -Cluster $c -Key 'timing:while-down').Value | Should -Be 'x'
        Remove-ReplicationCluster -Cluster $c -DeleteData -Confirm:$false
    }

    It 'runs a node process (Start-ReplicationNode -Path -Listen) with a 1000 ms election timeout and a 100 ms heartbeat' {
        $path = Join-Path $TestDrive 'timing-node'
        $node = Start-ReplicationNode -Path $path -Listen "127.0.0.1:$(Get-FreePort)" -ClusterSecret $secret -Name 'timing-node' `
            -ShardCount 1 -ReplicationFactor 1 -ElectionTimeout 1000 -HeartbeatInterval 100
        try {
            $node.State | Should -Be 'Running'
            Wait-ReplicationLeader -Cluster 'timing-node' -Timeout 60 | Out-Null
            Set-ReplicationKey -Cluster 'timing-node' -Key 'timing:node' -Value 'ok'
            (Get-ReplicationKey -Cluster 'timing-node' -Key 'timing:node').Value | Should -Be 'ok'
        }
        finally { Remove-ReplicationCluster -Cluster 'timing-node' -DeleteData -Confirm:$false }
    }

    It 'refuses a heartbeat not shorter than the election timeout (<Case>), and starts nothing' -ForEach @(
        @{ Case = 'equal'; Election = 100; Heartbeat = 100 }
        @{ Case = 'longer'; Election = 200; Heartbeat = 500 }
        @{ Case = 'equal once rounded up to 10 ms ticks'; Election = 35; Heartbeat = 31 }
    ) {
        $path = Join-Path $TestDrive "timing-bad-$Election-$Heartbeat"
        # Refused before anything starts: a terminating error, as every refused New-ReplicationCluster.
        $err = $null
        try { New-ReplicationCluster -Name 'timing-bad' -Path $path -ElectionTimeout $Election -HeartbeatInterval $Heartbeat | Out-Null }
        catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'InvalidClusterOptions,Replication.PowerShell.Commands.NewReplicationClusterCommand'
        $err.Exception.Message | Should -BeLike '*HeartbeatInterval*ElectionTimeout*'
        Get-ReplicationCluster -Name 'timing-bad' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $nodePath = Join-Path $TestDrive "timing-bad-node-$Election-$Heartbeat"
        $nodeErr = $null
        try {
            Start-ReplicationNode -Path $nodePath -Listen "127.0.0.1:$(Get-FreePort)" -ClusterSecret $secret -Name 'timing-bad-node' `
                -ElectionTimeout $Election -HeartbeatInterval $Heartbeat | Out-Null
        }
        catch { $nodeErr = $_ }
        $nodeErr.FullyQualifiedErrorId | Should -Be 'InvalidClusterOptions,Replication.PowerShell.Commands.StartReplicationNodeCommand'
        Test-Path $nodePath | Should -BeFalse
    }

    It 'refuses values outside the documented ranges at binding' {
        { New-ReplicationCluster -Name 'timing-range' -Path (Join-Path $TestDrive 'timing-range') -ElectionTimeout 20 } |
            Should -Throw -ErrorId 'ParameterArgumentValidationError,Replication.PowerShell.Commands.NewReplicationClusterCommand'
        { New-ReplicationCluster -Name 'timing-range' -Path (Join-Path $TestDrive 'timing-range') -HeartbeatInterval 0 } |
            Should -Throw -ErrorId 'ParameterArgumentValidationError,Replication.PowerShell.Commands.NewReplicationClusterCommand'
    }
}
