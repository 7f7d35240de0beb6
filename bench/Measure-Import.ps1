<#
.SYNOPSIS
    Times `Import-Csv | Set-ReplicationKey` in the deployed shape: three node processes, each a pwsh running
    `Start-ReplicationNode -Wait`, and the import in this pwsh session through Connect-ReplicationCluster.
.DESCRIPTION
    Writes a CSV of -Keys rows (a random 16-character key and a 256-character value, as the Bench's writes), then
    for each -Rounds: the same file piped through Import-Csv alone (what PowerShell itself costs per row), and
    `Import-Csv | Set-ReplicationKey` with each of the -ThrottleLimit values (empty: the cmdlet's default), fresh keys each
    time. Prints keys/s, the load average before each timing and the CPU seconds of the node processes and this
    shell. Every node process is stopped at the end (by its pid). Bounded: nothing loops without a limit.
.EXAMPLE
    dotnet pwsh ./bench/Measure-Import.ps1 -Module ./out/module/Replication.psd1 -Keys 50000 -Rounds 2
#>
param(
    [string] $Module = (Join-Path $PSScriptRoot '../out/module/Replication.psd1'),
    [int] $Keys = 50000,
    [int] $Rounds = 2,
    [string[]] $ThrottleLimit = @(''),
    [int] $Shards = 4,
    [string] $Root = (Join-Path ([IO.Path]::GetTempPath()) "import-bench-$PID")
)
$ErrorActionPreference = 'Stop'
$ThrottleLimit = @($ThrottleLimit | ForEach-Object { $_ -split ',' }) # `-File` passes 1,4,8 as one string
$Module = (Resolve-Path $Module).Path
Import-Module $Module
New-Item -ItemType Directory -Force $Root | Out-Null
$secretText = 'import-bench-secret'
$secret = ConvertTo-SecureString $secretText -AsPlainText -Force

function Get-FreePort {
    $probe = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    $probe.Start(); $port = $probe.LocalEndpoint.Port; $probe.Stop()
    $port
}

function Get-CpuSeconds([int] $ProcessId) {
    $fields = (Get-Content "/proc/$ProcessId/stat" -Raw).Split(')')[1].Trim().Split(' ')
    ([double]$fields[11] + [double]$fields[12]) / 100 # utime + stime, in clock ticks of 1/100 s
}

$nodes = @()
try {
    $ports = 1..3 | ForEach-Object { Get-FreePort }
    foreach ($i in 1..3) {
        $join = if ($i -gt 1) { "-Join 127.0.0.1:$($ports[0])" } else { "-ShardCount $Shards" }
        $script = "`$ErrorActionPreference = 'Stop'; Import-Module '$Module'; " +
            "Start-ReplicationNode -Path '$Root/node$i' -Listen 127.0.0.1:$($ports[$i - 1]) $join " +
            "-ClusterSecret (ConvertTo-SecureString '$secretText' -AsPlainText -Force) -Wait"
        # This shell's own pwsh: `dotnet pwsh` (the repository's tool) runs as dotnet plus pwsh.dll.
        $psi = [System.Diagnostics.ProcessStartInfo]::new([Environment]::ProcessPath)
        if ([IO.Path]::GetFileNameWithoutExtension([Environment]::ProcessPath) -eq 'dotnet') { $psi.ArgumentList.Add([Reflection.Assembly]::GetEntryAssembly().Location) }
        foreach ($a in '-NoProfile', '-NonInteractive', '-Command', $script) { $psi.ArgumentList.Add($a) }
        $psi.UseShellExecute = $false
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $process = [System.Diagnostics.Process]::Start($psi)
        $outputs = @($process.StandardOutput.ReadToEndAsync(), $process.StandardError.ReadToEndAsync())
        $nodes += $process
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        while ([DateTime]::UtcNow -lt $deadline) {
            if ($process.HasExited) { throw "node $i exited ($($process.ExitCode)): $($outputs.Result -join "`n")" }
            try { $c = [System.Net.Sockets.TcpClient]::new('127.0.0.1', $ports[$i - 1]); $c.Dispose(); break } catch { Start-Sleep -Milliseconds 200 }
        }
    }
    $cluster = Connect-ReplicationCluster -Endpoint ($ports | ForEach-Object { "127.0.0.1:$_" }) -ClusterSecret $secret -Name importbench
    $deadline = [DateTime]::UtcNow.AddSeconds(90)
    while ([DateTime]::UtcNow -lt $deadline) {
        $s = @(Get-ReplicationShard -Cluster $cluster)
        if ($s.Count -eq $Shards -and -not ($s | Where-Object { $_.Voters.Count -ne 3 -or $_.Leader -eq 0 })) { break }
        Start-Sleep -Milliseconds 500
    }
    # The cluster balances its leaders over the nodes right after forming: wait until the leaders hold still for 3 s.
    $last = ''; $still = 0
    for ($i = 0; $i -lt 60 -and $still -lt 3; $i++) {
        $now = (@(Get-ReplicationShard -Cluster $cluster | ForEach-Object { "$($_.Id):$($_.Leader)" }) -join ',')
        if ($now -eq $last) { $still++ } else { $still = 0; $last = $now }
        Start-Sleep -Seconds 1
    }
    Write-Host "cluster formed: $(@(Get-ReplicationShard -Cluster $cluster | ForEach-Object { "shard $($_.Id) leader $($_.Leader)" }) -join ', ')"
    # Warm-up: the first seconds of a fresh cluster run slower (README: a fresh WAL, tier-1 JIT).
    1..2000 | ForEach-Object { [pscustomobject]@{ Key = "warm:$_"; Value = 'x' * 256 } } | Set-ReplicationKey -Cluster $cluster -ErrorAction SilentlyContinue

    $rng = [Random]::new(11)
    $csvs = @(foreach ($r in 1..($Rounds * $ThrottleLimit.Count)) {
        $path = Join-Path $Root "keys$r.csv"
        $lines = [System.Collections.Generic.List[string]]::new($Keys + 1)
        $lines.Add('Key,Value')
        $value = 'v' * 256
        for ($k = 0; $k -lt $Keys; $k++) { $lines.Add(('{0:x16},{1}' -f $rng.NextInt64(), $value)) }
        [IO.File]::WriteAllLines($path, $lines)
        $path
    })
    $n = 0
    foreach ($round in 1..$Rounds) {
        $load = (Get-Content /proc/loadavg).Split(' ')[0]
        $t = [Diagnostics.Stopwatch]::StartNew()
        Import-Csv $csvs[0] | Out-Null
        Write-Host ("round {0}: Import-Csv | Out-Null        {1,9:N0} rows/s  (load {2})" -f $round, ($Keys / $t.Elapsed.TotalSeconds), $load)
        foreach ($w in $ThrottleLimit) {
            $path = $csvs[$n++]
            $load = (Get-Content /proc/loadavg).Split(' ')[0]
            $cpu0 = $nodes | ForEach-Object { Get-CpuSeconds $_.Id }
            $self0 = Get-CpuSeconds $PID
            $jit0 = [System.Runtime.JitInfo]::GetCompilationTime().TotalSeconds; $jitted0 = [System.Runtime.JitInfo]::GetCompiledMethodCount()
            $extra = if ($w) { @{ ThrottleLimit = [int]$w } } else { @{} }
            $errors = 0
            $t = [Diagnostics.Stopwatch]::StartNew()
            Import-Csv $path | Set-ReplicationKey -Cluster $cluster @extra -ErrorVariable +failed -ErrorAction SilentlyContinue
            $seconds = $t.Elapsed.TotalSeconds
            $errors = @($failed).Count
            $kinds = (@($failed) | Group-Object { $_.FullyQualifiedErrorId.Split(',')[0] } | ForEach-Object { "$($_.Name) x$($_.Count)" }) -join ', '
            if ($failed) { Write-Host "  first error: $($failed[0].Exception.Message)" }
            $failed = $null
            $cpu = for ($i = 0; $i -lt 3; $i++) { '{0:N1}' -f ((Get-CpuSeconds $nodes[$i].Id) - $cpu0[$i]) }
            Write-Host ("round {0}: Import-Csv | Set-ReplicationKey{1} {2,9:N0} keys/s  ({3:N2} s, {4} errors{8}, load {5}; CPU s nodes {6}, this shell {7:N1}, of it JIT {9:N1} s for {10:N0} methods)" -f `
                    $round, $(if ($w) { " -ThrottleLimit $w" } else { '' }), ($Keys / $seconds), $seconds, $errors, $load, ($cpu -join ' / '), ((Get-CpuSeconds $PID) - $self0), $(if ($kinds) { ": $kinds" } else { '' }),
                    ([System.Runtime.JitInfo]::GetCompilationTime().TotalSeconds - $jit0), ([System.Runtime.JitInfo]::GetCompiledMethodCount() - $jitted0))
        }
    }
    $count = @(Get-ReplicationKey -Cluster $cluster -WarningAction SilentlyContinue).Count
    Write-Host "keys in the cluster: $count (expected $(2000 + $Keys * $Rounds * $ThrottleLimit.Count))"
}
finally {
    foreach ($p in $nodes) { if (-not $p.HasExited) { $p.Kill($true) } }
    Get-ReplicationCluster | Where-Object Name -EQ importbench | Disconnect-ReplicationCluster -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $Root -ErrorAction SilentlyContinue
}
