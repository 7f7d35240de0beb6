# The two shapes every cluster-acting cmdlet is tested in (dot-sourced by Replication.Shapes.Tests.ps1):
#   Embedded: New-ReplicationCluster, its N nodes in this pwsh process;
#   Process:  N node processes (tests/Replication.NodeProcess, one ClusterNode each, as Start-ReplicationNode -Wait
#             runs one), administered from this shell through Connect-ReplicationCluster with only the endpoints
#             and the secret.
# The cmdlets under test are the same in both; only starting a node process again is the test's own job (a shell
# cannot start a process on another machine: Start-ReplicationNode -Id answers NotSupportedRemotely there).

$script:ShapeSecretText = 'pester-shapes-secret'
$script:ShapeSecret = ConvertTo-SecureString $script:ShapeSecretText -AsPlainText -Force
$script:NodeProcesses = @{} # cluster name -> @{ Root; Nodes = @{ id -> @{ Process; Folder; Port; Log } } }

function Get-NodeHostDll {
    $dll = Join-Path $RepoRoot 'tests/Replication.NodeProcess/bin/Release/net10.0/Replication.NodeProcess.dll'
    if (-not (Test-Path $dll)) { throw "Build the solution first: $dll is missing." }
    $dll
}

function Start-NodeProcess {
    # Starts one node process (its output goes to a log file, so it never blocks on a full pipe) and waits for
    # its READY line. /bin/sh exec's dotnet, so the pid is the server's own: killing it kills the node.
    param([Parameter(Mandatory)] [string] $Folder, [Parameter(Mandatory)] [int] $Port, [string] $Join, [string[]] $Extra = @())
    $log = "$Folder.$([guid]::NewGuid().ToString('N').Substring(0, 8)).log" # one per start: a second start must not read the first's READY
    $arguments = @((Get-NodeHostDll), '--path', $Folder, '--listen', "127.0.0.1:$Port") + $(if ($Join) { @('--join', $Join) } else { @() }) + $Extra
    $quoted = ($arguments | ForEach-Object { "'" + ($_ -replace "'", "'\''") + "'" }) -join ' '
    $psi = [System.Diagnostics.ProcessStartInfo]::new('/bin/sh')
    $psi.ArgumentList.Add('-c')
    $psi.ArgumentList.Add("exec dotnet $quoted > '$log' 2>&1")
    $psi.UseShellExecute = $false
    $psi.RedirectStandardInput = $true # the node stops when its stdin closes: it cannot outlive this shell
    $psi.Environment['REPLICATION_CLUSTER_SECRET'] = $script:ShapeSecretText
    $process = [System.Diagnostics.Process]::Start($psi)
    $ready = $null
    Wait-Condition -Timeout '00:01:00' -Because "node process on port $Port prints READY" -Condition {
        if ($process.HasExited) { throw "The node process on port $Port exited ($($process.ExitCode)): $(Get-Content -Raw $log -ErrorAction SilentlyContinue)" }
        $line = Get-Content $log -ErrorAction SilentlyContinue | Where-Object { $_ -like 'READY *' } | Select-Object -First 1
        if ($line) { $script:readyLine = $line; $true } else { $false }
    }
    [pscustomobject]@{ Process = $process; Folder = $Folder; Port = $Port; Log = $log; Id = [int]($script:readyLine.Split(' ')[1]) }
}

function New-TestCluster {
    # A running, formed cluster of the given shape, registered in this session under -Name (the current cluster).
    param([Parameter(Mandatory)] [ValidateSet('Embedded', 'Process')] [string] $Shape, [Parameter(Mandatory)] [string] $Name,
        [Parameter(Mandatory)] [string] $Root, [int] $NodeCount = 3, [int] $ShardCount = 3, [string] $StoreLayout = 'FilePerNode')
    if ($Shape -eq 'Embedded') {
        return New-ReplicationCluster -Name $Name -Path (Join-Path $Root $Name) -NodeCount $NodeCount -ShardCount $ShardCount -ClusterSecret $script:ShapeSecret -StoreLayout $StoreLayout
    }
    $layout = @('--store-layout', $StoreLayout)
    $folder = Join-Path $Root $Name
    New-Item -ItemType Directory -Force $folder | Out-Null
    $nodes = @{}
    $first = Start-NodeProcess -Folder (Join-Path $folder 'node1') -Port (Get-FreePort) -Extra (@('--name', $Name, '--shards', $ShardCount, '--rf', [Math]::Min(3, $NodeCount)) + $layout)
    $nodes[$first.Id] = $first
    for ($i = 2; $i -le $NodeCount; $i++) {
        $node = Start-NodeProcess -Folder (Join-Path $folder "node$i") -Port (Get-FreePort) -Join "127.0.0.1:$($first.Port)" -Extra $layout
        $nodes[$node.Id] = $node
    }
    $script:NodeProcesses[$Name] = @{ Root = $folder; Nodes = $nodes }
    $cluster = Connect-ReplicationCluster -Endpoint ($nodes.Values | ForEach-Object { "127.0.0.1:$($_.Port)" }) -ClusterSecret $script:ShapeSecret -Name $Name
    $rf = [Math]::Min(3, $NodeCount)
    Wait-Condition -Timeout '00:01:00' -Because "cluster $Name formed ($NodeCount nodes, every shard with $rf voters and a leader)" -Condition {
        $shards = @(Get-ReplicationShard -Cluster $cluster)
        @(Get-ReplicationNode -Cluster $cluster | Where-Object State -EQ 'Running').Count -eq $NodeCount -and
            $shards.Count -eq $ShardCount -and -not ($shards | Where-Object { $_.Voters.Count -ne $rf -or $_.Leader -eq 0 })
    }
    # As New-ReplicationCluster does for an embedded cluster: the metadata group, which grows one node at a time after the
    # shards formed, votes on the lowest five ids (a test that kills two of five nodes relies on it). Node processes are
    # started one by one, so no cmdlet waits for that here; the metadata leader's MembershipChanged events tell it.
    $metadataVoters = (@($nodes.Keys | Sort-Object) | Select-Object -First 5) -join ','
    if ($NodeCount -gt 1) {
        Wait-Condition -Timeout '00:01:00' -Because "the metadata group of $Name votes on nodes $metadataVoters" -Condition {
            Get-ReplicationEvent -Cluster $cluster -Type MembershipChanged -WarningAction SilentlyContinue | Where-Object {
                $_.Message -match '^Metadata group: Members changed: voters \S+ \u2192 ([\d,]+),' -and
                    ((($Matches[1] -split ',') | ForEach-Object { [int]$_ } | Sort-Object) -join ',') -eq $metadataVoters
            }
        }
    }
    $cluster
}

function Start-TestNode {
    # Starts a stopped node again: Start-ReplicationNode for an embedded one, its process again for a node process.
    param([Parameter(Mandatory)] $Cluster, [Parameter(Mandatory)] [int] $Id, [switch] $Rebuild)
    if ($Cluster.Mode -eq 'Embedded') { return Start-ReplicationNode -Cluster $Cluster -Id $Id }
    $entry = $script:NodeProcesses[$Cluster.Name].Nodes[$Id]
    if (-not $entry.Process.HasExited) { $entry.Process.Kill(); $entry.Process.WaitForExit(10000) | Out-Null }
    $node = Start-NodeProcess -Folder $entry.Folder -Port $entry.Port -Extra $(if ($Rebuild) { @('--rebuild') } else { @() })
    $script:NodeProcesses[$Cluster.Name].Nodes[$Id] = $node
    Wait-Condition -Because "node $Id answers as Running" -Condition { (Get-ReplicationNode -Cluster $Cluster -Id $Id).State -eq 'Running' }
    Get-ReplicationNode -Cluster $Cluster -Id $Id
}

function Stop-TestNodeHard {
    # A crash: SIGKILL of a node process, or Stop-ReplicationNode -Kill of an embedded node.
    param([Parameter(Mandatory)] $Cluster, [Parameter(Mandatory)] [int] $Id)
    if ($Cluster.Mode -eq 'Embedded') { Stop-ReplicationNode -Cluster $Cluster -Id $Id -Kill -Confirm:$false | Out-Null; return }
    $process = $script:NodeProcesses[$Cluster.Name].Nodes[$Id].Process
    $process.Kill()
    $process.WaitForExit(10000) | Out-Null
}

function Set-TestNodeCutOff {
    # A partition at one node's transport (the fault drill's, TcpTransport.Faults.cs): every Raft message to and from the
    # nodes in -From is dropped at node -Id; status reports and client requests still flow, so the node knows how far
    # behind it falls. An empty -From heals it. Test-only: an embedded node's hook is internal (reached by reflection), a
    # node process takes the command on its stdin (tests/Replication.NodeProcess) and confirms it in its log.
    param([Parameter(Mandatory)] $Cluster, [Parameter(Mandatory)] [int] $Id, [int[]] $From = @())
    if ($Cluster.Mode -eq 'Embedded') {
        $flags = [System.Reflection.BindingFlags]'NonPublic,Instance'
        $engine = $Cluster.GetType().GetProperty('Engine', $flags).GetValue($Cluster)
        $node = $engine.GetType().GetField('_nodes', $flags).GetValue($engine)[$Id]
        $nodeHost = $node.GetType().GetProperty('Host', $flags).GetValue($node)
        $nodeHost.GetType().GetMethod('CutOff', $flags).Invoke($nodeHost, @(, [int[]]$From)) | Out-Null
        return
    }
    $entry = $script:NodeProcesses[$Cluster.Name].Nodes[$Id]
    $confirmation = "CUTOFF [$($From -join ',')]"
    $before = @(Get-Content $entry.Log | Where-Object { $_ -eq $confirmation }).Count
    $entry.Process.StandardInput.WriteLine("cutoff $($From -join ',')")
    $entry.Process.StandardInput.Flush()
    Wait-Condition -Because "node $Id confirms $confirmation" -Condition {
        @(Get-Content $entry.Log | Where-Object { $_ -eq $confirmation }).Count -gt $before
    }
}

function Remove-TestCluster {
    param([Parameter(Mandatory)] $Cluster)
    if ($Cluster.Mode -eq 'Embedded') { Remove-ReplicationCluster -Cluster $Cluster -DeleteData -Confirm:$false; return }
    Disconnect-ReplicationCluster -Cluster $Cluster
    $entry = $script:NodeProcesses[$Cluster.Name]
    foreach ($node in $entry.Nodes.Values) {
        if (-not $node.Process.HasExited) { $node.Process.Kill(); $node.Process.WaitForExit(10000) | Out-Null }
    }
    $script:NodeProcesses.Remove($Cluster.Name)
    Remove-Item -Recurse -Force $entry.Root -ErrorAction SilentlyContinue
}
