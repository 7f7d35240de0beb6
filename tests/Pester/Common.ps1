# Shared by the *.Tests.ps1 files (dot-sourced in BeforeAll). Not a test file itself.
$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:Manifest = Join-Path $script:RepoRoot 'Replication.psd1'

function Wait-Condition {
    # Polls $Condition until it returns a true value; throws after $Timeout. Every wait in these
    # tests is a condition with a bound like this, never a fixed sleep.
    param(
        [Parameter(Mandatory)] [scriptblock] $Condition,
        [timespan] $Timeout = '00:00:30',
        [Parameter(Mandatory)] [string] $Because
    )
    $deadline = [DateTime]::UtcNow + $Timeout
    while (-not (& $Condition)) {
        if ([DateTime]::UtcNow -ge $deadline) { throw "Timed out after $Timeout waiting until $Because." }
        Start-Sleep -Milliseconds 50
    }
}

function Get-LeadingNodeId {
    # The node that leads the most shards of the given cluster.
    param([Parameter(Mandatory)] $Cluster)
    (Get-ReplicationNode -Cluster $Cluster | Sort-Object ShardsLed -Descending | Select-Object -First 1).Id
}

function Remove-AllReplicationClusters {
    Get-ReplicationCluster | Where-Object Mode -EQ 'Remote' | Disconnect-ReplicationCluster
    Get-ReplicationCluster | Remove-ReplicationCluster -DeleteData -Confirm:$false
}

$script:HandedOutPorts = [System.Collections.Generic.HashSet[int]]::new()

function Get-FreePort {
    # A free port below the kernel's ephemeral range (Linux: ip_local_port_range), never handed out twice in this session.
    # A port the OS chose for ':0' can be chosen again at once for an outgoing connection or another ':0' listener (an
    # embedded node's) before the node process that was given it listens on it: seen under load as the process exiting
    # with ListenEndpointInUse. Nothing takes ports below that range unasked.
    $low = 32768
    $range = '/proc/sys/net/ipv4/ip_local_port_range'
    if (Test-Path $range) { $low = [int]((Get-Content $range -Raw).Trim() -split '\s+')[0] }
    for ($i = 0; $i -lt 100; $i++) {
        $port = Get-Random -Minimum 10000 -Maximum ([Math]::Max(10001, $low))
        if (-not $script:HandedOutPorts.Add($port)) { continue }
        $probe = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, $port)
        try { $probe.Start(); $probe.Stop(); return $port }
        catch [System.Net.Sockets.SocketException] { }
    }
    throw "No free port found below $low."
}
