# Export-ReplicationReport: one self-contained HTML page, checked as text and in a real headless browser (Debian's
# chromium, installed here when missing and possible; the browser test is skipped with the reason otherwise).
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
    $script:Cluster = New-ReplicationCluster -Name 'report' -Path (Join-Path $TestDrive 'report') -ShardCount 4
    Wait-ReplicationLeader -Cluster $script:Cluster | Out-Null
    1..20 | ForEach-Object { [pscustomobject]@{ Key = "r:$_"; Value = "v$_" } } | Set-ReplicationKey -Cluster $script:Cluster

    function Find-Chromium {
        # The browser, installing Debian's package when it is missing and this is a root shell with apt-get.
        # Returns the path, or a string starting with 'skip:' that says why there is none.
        foreach ($name in 'chromium', 'chromium-browser', 'google-chrome') {
            $found = Get-Command $name -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
            if ($found) { return $found.Source }
        }
        if (-not $IsLinux -or -not (Get-Command apt-get -ErrorAction SilentlyContinue)) { return 'skip: no chromium, and no apt-get to install it' }
        if ((& id -u) -ne '0') { return 'skip: no chromium, and installing it needs root (apt-get install chromium)' }
        $log = Join-Path $TestDrive 'apt.log'
        # The package lists first: a fresh machine (or container) has none, and install then cannot locate the package.
        $update = Start-Process apt-get -ArgumentList 'update', '-q' -RedirectStandardOutput "$log.update" -RedirectStandardError "$log.update.err" -PassThru -NoNewWindow
        if (-not $update.WaitForExit(300000)) { $update.Kill($true); return 'skip: apt-get update did not finish within 5 minutes' }
        $apt = Start-Process apt-get -ArgumentList 'install', '-y', '-q', 'chromium' -RedirectStandardOutput $log -RedirectStandardError "$log.err" -PassThru -NoNewWindow
        if (-not $apt.WaitForExit(600000)) { $apt.Kill($true); return 'skip: apt-get install chromium did not finish within 10 minutes' }
        $found = Get-Command chromium -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
        if ($found) { return $found.Source }
        "skip: apt-get install chromium failed (exit $($apt.ExitCode)): $((Get-Content "$log.err" -Tail 3) -join ' ')"
    }

    function Invoke-HeadlessChromium([string] $Browser, [string] $Page) {
        # Loads the page in headless Chromium and returns @{ Dom; Log }: the DOM after scripts ran, and the console log.
        # Flags as this machine's notes say (no sandbox as root, no background networking: the network is closed).
        $profile = Join-Path $TestDrive "chromium-$([guid]::NewGuid().ToString('n'))"
        $info = [System.Diagnostics.ProcessStartInfo]::new($Browser)
        foreach ($a in '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', '--enable-logging=stderr', '--v=0', "--user-data-dir=$profile",
            '--virtual-time-budget=5000', '--dump-dom', [System.Uri]::new($Page).AbsoluteUri) { $info.ArgumentList.Add($a) }
        $info.RedirectStandardOutput = $true
        $info.RedirectStandardError = $true
        $process = [System.Diagnostics.Process]::Start($info)
        $stderr = $process.StandardError.ReadToEndAsync()
        $dom = $process.StandardOutput.ReadToEndAsync()
        if (-not $process.WaitForExit(120000)) { $process.Kill($true); throw 'headless chromium did not finish within 120 s' }
        @{ Dom = $dom.GetAwaiter().GetResult(); Log = $stderr.GetAwaiter().GetResult() }
    }
}
AfterAll {
    Remove-Item Function:\Get-ReplicationRing, Function:\Get-ReplicationEvent -ErrorAction SilentlyContinue
    Remove-AllReplicationClusters
}

Describe 'Export-ReplicationReport' {
    It 'writes one self-contained page with every node and shard, and says which sections have no data yet' {
        $file = Export-ReplicationReport -Cluster $script:Cluster -Path (Join-Path $TestDrive 'plain.html') -BenchmarkPath (Join-Path $TestDrive 'no-bench')
        $file | Should -BeOfType ([IO.FileInfo])
        $html = Get-Content -Raw $file.FullName
        foreach ($node in Get-ReplicationNode -Cluster $script:Cluster) { $html | Should -Match "id=""node-$($node.Id)""" }
        foreach ($shard in Get-ReplicationShard -Cluster $script:Cluster) { $html | Should -Match "id=""shard-$($shard.Id)""" }
        $html | Should -Not -Match '(src|href)="(https?:)?//' -Because 'the page loads nothing from the network'
        $html | Should -Not -Match '<link '
        if (-not (Get-Command Get-ReplicationRing -ErrorAction SilentlyContinue)) { $html | Should -Match 'Get-ReplicationRing is not in this version' }
        $html | Should -Match 'No benchmark results'
    }

    It 'draws the ring from Get-ReplicationRing, lists Get-ReplicationEvent and charts benchmark JSON' {
        # Stand-ins for the cmdlets still to come, with the properties the product contract names.
        function global:Get-ReplicationRing {
            param($Cluster)
            $at = { param([decimal] $f) [uint64]([decimal][uint64]::MaxValue * $f) }   # a point of the ring, as a fraction of 2^64
            $tokens = @{ 1 = @((& $at 0.0625), (& $at 0.4375), (& $at 0.6875)); 2 = @((& $at 0.1875), (& $at 0.5625)); 3 = @((& $at 0.3125), (& $at 0.875)) }
            foreach ($n in 1..3) { [pscustomobject]@{ Node = $n; Zone = "z$n"; Tokens = $tokens[$n]; Share = 1 / 3; ShardsHeld = 4; ShardsLed = 1; Bytes = 1MB } }
        }
        function global:Get-ReplicationEvent {
            param($Cluster, [int] $Last)
            1..3 | ForEach-Object { [pscustomobject]@{ Time = [datetimeoffset]::Now.AddMinutes(-$_); Type = 'Election'; Node = $_; Shard = 0; Term = $_ + 1; Message = "node $_ won <the> election" } }
        }
        try {
            $bench = Join-Path $TestDrive 'bench'
            New-Item -ItemType Directory $bench | Out-Null
            @{ machine = 'test'; rounds = @(
                    @{ system = 'replication'; round = 1; phases = @(@{ kind = 'write'; clients = 16; opsPerSecond = 3148.25; p99 = 12.5 }, @{ kind = 'warmup'; clients = 16; opsPerSecond = 1 }) }
                    @{ system = 'etcd'; round = 1; phases = @(@{ kind = 'write'; clients = 16; opsPerSecond = 2500; p99 = 9 }) }
                ) } | ConvertTo-Json -Depth 6 | Set-Content (Join-Path $bench 'results.json')
            Set-Content (Join-Path $bench 'broken.json') '{ not json'
            $html = Get-Content -Raw (Export-ReplicationReport -Cluster $script:Cluster -Path (Join-Path $TestDrive 'full.html') -BenchmarkPath $bench).FullName
            @([regex]::Matches($html, '<path class="arc" data-node="(\d)"') | ForEach-Object { $_.Groups[1].Value } | Sort-Object -Unique) |
                Should -Be @('1', '2', '3')
            ([regex]::Matches($html, '<path class="arc"')).Count | Should -Be 7
            ([regex]::Matches($html, '<tr class="event"')).Count | Should -Be 3
            $html | Should -Match 'node 1 won &lt;the&gt; election' -Because 'text is escaped'
            $html | Should -Match 'replication: write, 16 clients'
            $html | Should -Match '3,148 ops/s, p99 12.5 ms'
            $html | Should -Not -Match 'warmup'
            $html | Should -Match 'broken.json'
        }
        finally { Remove-Item Function:\Get-ReplicationRing, Function:\Get-ReplicationEvent -ErrorAction SilentlyContinue }
    }

    It 'refuses to overwrite with -NoClobber (ReportFileExists) and does nothing under -WhatIf' {
        $path = Join-Path $TestDrive 'clobber.html'
        Set-Content $path 'keep me'
        { Export-ReplicationReport -Cluster $script:Cluster -Path $path -NoClobber } |
            Should -Throw -ErrorId 'ReportFileExists,Replication.PowerShell.Commands.ExportReplicationReportCommand'
        Export-ReplicationReport -Cluster $script:Cluster -Path $path -WhatIf | Should -BeNullOrEmpty
        Get-Content $path | Should -Be 'keep me'
    }

    It 'loads in headless Chromium without script errors, showing every node and shard' {
        $browser = Find-Chromium
        if ($browser -like 'skip:*') { Set-ItResult -Skipped -Because $browser.Substring(6); return }
        function global:Get-ReplicationRing { param($Cluster) 1..3 | ForEach-Object { [pscustomobject]@{ Node = $_; Tokens = @([uint64]([decimal][uint64]::MaxValue * $_ / 4)); Share = 0.25 } } }
        try { $page = (Export-ReplicationReport -Cluster $script:Cluster -Path (Join-Path $TestDrive 'browser.html') -BenchmarkPath $TestDrive).FullName }
        finally { Remove-Item Function:\Get-ReplicationRing -ErrorAction SilentlyContinue }
        $result = Invoke-HeadlessChromium $browser $page
        $result.Dom | Should -Match '<body[^>]*data-rendered="yes"' -Because "the page's script ran to its end (log: $($result.Log -split "`n" | Select-Object -Last 5))"
        $result.Dom | Should -Not -Match '<body[^>]*data-script-errors'
        $result.Log | Should -Not -Match 'Uncaught'
        foreach ($node in Get-ReplicationNode -Cluster $script:Cluster) { $result.Dom | Should -Match "<tr id=""node-$($node.Id)""" }
        foreach ($shard in Get-ReplicationShard -Cluster $script:Cluster) { $result.Dom | Should -Match "<tr id=""shard-$($shard.Id)""" }
        ([regex]::Matches($result.Dom, '<path class="arc"')).Count | Should -Be 3
    }

    # Last: it stops two of the three nodes.
    It 'says a lag is not known, not 0, for a node that hears from no peer' {
        Stop-ReplicationNode -Cluster $script:Cluster -Id 2, 3 -Confirm:$false
        Wait-Condition -Because 'node 1, alone, no longer claims a lag' -Condition { $null -eq (Get-ReplicationNode -Cluster $script:Cluster -Id 1).LagEntries }
        $html = Get-Content -Raw (Export-ReplicationReport -Cluster $script:Cluster -Path (Join-Path $TestDrive 'alone.html')).FullName
        $html | Should -Match '<div class="card warn"><div class="value">not known</div><div class="label">Largest lag \(entries\)'
        # The ninth cell of its row is the lag.
        $html | Should -Match '<tr id="node-1"[^>]*>(<td[^>]*>.*?</td>){8}<td class="num">&ndash;</td>'
    }
}
