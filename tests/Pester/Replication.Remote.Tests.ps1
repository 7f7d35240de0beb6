# Remote administration as an operator would do it: an embedded cluster with a known secret, then
# Connect-ReplicationCluster to one of its endpoints and every cmdlet through the remote object.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
    $script:SecretText = 'pester-cluster-secret'
    $script:Secret = ConvertTo-SecureString $script:SecretText -AsPlainText -Force
    $script:Embedded = New-ReplicationCluster -Name 'remote-src' -Path (Join-Path $TestDrive 'remote-src') -ShardCount 3 -ClusterSecret $script:Secret
    Wait-ReplicationLeader -Cluster $script:Embedded -Timeout '00:00:30' | Out-Null
}

AfterAll {
    Get-ReplicationCluster | Where-Object Mode -EQ 'Remote' | Disconnect-ReplicationCluster
    Remove-AllReplicationClusters
}

Describe 'Connect-ReplicationCluster' {
    It 'connects to one endpoint and works through the remote object' {
        $remote = Connect-ReplicationCluster -Endpoint $script:Embedded.Endpoints[1] -ClusterSecret $script:Secret -Name 'remote-view'
        $remote.Mode | Should -Be 'Remote'
        $remote.Id | Should -Be $script:Embedded.Id
        $remote.Path | Should -BeNullOrEmpty
        $remote.Endpoints.Count | Should -Be 3
        (Get-ReplicationCluster -Name 'remote-view') | Should -Not -BeNullOrEmpty

        # Current cluster is the remote one: no -Cluster needed.
        1..20 | ForEach-Object { [pscustomobject]@{ Key = "r/$_"; Value = "v$_" } } | Set-ReplicationKey
        (Get-ReplicationKey -Key 'r/7').Value | Should -Be 'v7'
        (Get-ReplicationKey -Key 'r/7' -Cluster $script:Embedded).Value | Should -Be 'v7'
        $scan = @(Get-ReplicationKey -Prefix 'r/')
        $scan.Count | Should -Be 20
        $scan[0].Cluster | Should -Be 'remote-view'
        Remove-ReplicationKey -Key 'r/20' -Confirm:$false
        Get-ReplicationKey -Key 'r/20' -ErrorAction SilentlyContinue -ErrorVariable missing | Should -BeNullOrEmpty
        $missing[0].FullyQualifiedErrorId | Should -BeLike 'KeyNotFound,*'

        Set-ReplicationKey -Key 'r/1' -Value 'x' -ExpectedVersion 9 -ErrorAction SilentlyContinue -ErrorVariable conflict
        $conflict[0].FullyQualifiedErrorId | Should -BeLike 'VersionConflict,*'

        $nodes = @(Get-ReplicationNode)
        $nodes.Count | Should -Be 3
        ($nodes | Where-Object State -EQ 'Running').Count | Should -Be 3
        @(Wait-ReplicationLeader -Timeout '00:00:20').Count | Should -Be 3

        $stopped = Stop-ReplicationNode -Id 3 -Confirm:$false
        $stopped.State | Should -Be 'Stopped'
        (Start-ReplicationNode -Id 3).State | Should -Be 'Running'
    }

    It 'refuses a wrong secret with AuthenticationFailed, and never shows the secret' {
        $wrong = ConvertTo-SecureString 'not-the-secret' -AsPlainText -Force
        { Connect-ReplicationCluster -Endpoint $script:Embedded.Endpoints[0] -ClusterSecret $wrong -Name 'bad' } |
            Should -Throw -ErrorId 'AuthenticationFailed,Replication.PowerShell.Commands.ConnectReplicationClusterCommand'
        try { Connect-ReplicationCluster -Endpoint $script:Embedded.Endpoints[0] -ClusterSecret $wrong -Name 'bad' } catch { $record = $_ }
        $record.CategoryInfo.Category | Should -Be 'AuthenticationError'
        ($record | Out-String) | Should -Not -Match 'not-the-secret'
        Get-ReplicationCluster -Name 'bad' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'reports EndpointUnreachable when no endpoint answers' {
        $port = Get-FreePort
        { Connect-ReplicationCluster -Endpoint "127.0.0.1:$port" -ClusterSecret $script:Secret -Name 'nobody' } |
            Should -Throw -ErrorId 'EndpointUnreachable,Replication.PowerShell.Commands.ConnectReplicationClusterCommand'
    }

    It 'Remove-ReplicationCluster on a remote cluster is NotSupportedRemotely and stops nothing' {
        $remote = Connect-ReplicationCluster -Endpoint $script:Embedded.Endpoints[0] -ClusterSecret $script:Secret -Name 'remote-remove'
        Remove-ReplicationCluster -Cluster $remote -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -BeLike 'NotSupportedRemotely,*'
        $remote.State | Should -Be 'Running'
        Disconnect-ReplicationCluster -Cluster $remote
    }

    It 'Disconnect-ReplicationCluster leaves the cluster running' {
        $remote = Connect-ReplicationCluster -Endpoint $script:Embedded.Endpoints -ClusterSecret $script:Secret -Name 'remote-bye'
        Disconnect-ReplicationCluster -Name 'remote-bye' # -Name, as Connect-ReplicationCluster spelled it (an alias of -Cluster)
        $remote.State | Should -Be 'Disconnected'
        Get-ReplicationCluster -Name 'remote-bye' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $script:Embedded.State | Should -Be 'Running'
        (Get-ReplicationKey -Key 'r/1' -Cluster $script:Embedded).Value | Should -Be 'v1'
        Disconnect-ReplicationCluster -Cluster $script:Embedded -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -BeLike 'NotSupportedEmbedded,*'
    }
}
