# Help that runs: every EXAMPLE of every cmdlet's help (Get-Help <cmdlet> -Examples, generated from the <example>
# doc comments) is parsed, then executed in a fresh folder against a fresh embedded cluster; a broken example fails
# the build. How particular examples run (a remote cluster in another pwsh process, a backup to restore, a blocking
# -Wait stopped like Ctrl+C) is in HelpExamples.psd1. A new cmdlet's examples are picked up with no change here.
BeforeDiscovery {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
    $examples = foreach ($command in Get-Command -Module Replication -CommandType Cmdlet | Sort-Object Name) {
        $number = 0
        foreach ($example in @((Get-Help $command.Name).examples.example)) {
            $number++
            @{ Name = $command.Name; Number = $number; Code = "$($example.code)".Trim() }
        }
    }
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
    $script:Settings = Import-PowerShellDataFile (Join-Path $PSScriptRoot 'HelpExamples.psd1')
    $script:SecretText = 'help-example-secret'
    $script:Secret = ConvertTo-SecureString $script:SecretText -AsPlainText -Force
    $script:Remote = $null

    # What every example sees: the known secret, no prompts, errors that stop it. Also the preamble of a blocking
    # example's own runspace.
    $script:Prelude = @'
$ErrorActionPreference = 'Stop'
$ConfirmPreference = 'None'
$ProgressPreference = 'SilentlyContinue'
function Read-Host { param([Parameter(Position = 0)] $Prompt, [switch] $AsSecureString) if ($AsSecureString) { $secret } else { 'answer' } }
function Get-Credential { param([Parameter(Position = 0)] $UserName) [pscredential]::new($(if ($UserName) { $UserName } else { 'user' }), $secret) }
'@

    function Get-FreeEndpoint { "127.0.0.1:$(Get-FreePort)" }

    function Start-RemoteHost {
        # Another pwsh process, as a remote shell would face: two embedded clusters with the known secret (remote-a,
        # and remote-empty for restores) and two nodes running alone (seeds to join: an example that joins one and is
        # then stopped leaves that seed's metadata group without a quorum, as it would for an operator, so the next
        # example joins the other). Started once, on first use.
        if ($script:Remote) { return $script:Remote }
        $env:HELP_EXAMPLE_SECRET = $script:SecretText
        $env:HELP_EXAMPLE_DATA = Join-Path $TestDrive 'remote-host'
        $env:HELP_EXAMPLE_MANIFEST = $Manifest
        $child = {
            $ErrorActionPreference = 'Stop'
            Import-Module $env:HELP_EXAMPLE_MANIFEST
            $s = ConvertTo-SecureString $env:HELP_EXAMPLE_SECRET -AsPlainText -Force
            $a = New-ReplicationCluster -Name remote-a -Path (Join-Path $env:HELP_EXAMPLE_DATA 'a') -ClusterSecret $s -ShardCount 2
            $e = New-ReplicationCluster -Name remote-empty -Path (Join-Path $env:HELP_EXAMPLE_DATA 'empty') -ClusterSecret $s -ShardCount 2
            $n = Start-ReplicationNode -Path (Join-Path $env:HELP_EXAMPLE_DATA 'seed') -Listen 127.0.0.1:0 -ClusterSecret $s -Name seed
            $n2 = Start-ReplicationNode -Path (Join-Path $env:HELP_EXAMPLE_DATA 'seed2') -Listen 127.0.0.1:0 -ClusterSecret $s -Name seed2
            Wait-ReplicationLeader -Cluster $a -Timeout 60 | Out-Null
            Wait-ReplicationLeader -Cluster $e -Timeout 60 | Out-Null
            'READY ' + (@{ Remote = @($a.Endpoints); RemoteEmpty = @($e.Endpoints); Seed = @($n.Endpoint, $n2.Endpoint) } | ConvertTo-Json -Compress)
            [Console]::Out.Flush()
            [void][Console]::In.ReadLine()   # until the test closes our stdin
            Get-ReplicationCluster | Remove-ReplicationCluster -Confirm:$false
        }
        $info = [System.Diagnostics.ProcessStartInfo]::new('dotnet')
        foreach ($a in 'pwsh', '-NoProfile', '-NonInteractive', '-EncodedCommand', [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($child.ToString()))) { $info.ArgumentList.Add($a) }
        $info.WorkingDirectory = $RepoRoot
        $info.RedirectStandardInput = $true
        $info.RedirectStandardOutput = $true
        $info.RedirectStandardError = $true
        $process = [System.Diagnostics.Process]::Start($info)
        $errors = $process.StandardError.ReadToEndAsync()
        $deadline = [DateTime]::UtcNow.AddSeconds(180)
        $line = $null
        while ([DateTime]::UtcNow -lt $deadline) {
            $read = $process.StandardOutput.ReadLineAsync()
            if (-not $read.Wait([TimeSpan]::FromSeconds(180))) { break }
            $line = $read.Result
            if ($null -eq $line -or $line.StartsWith('READY ')) { break }
        }
        if (-not $line -or -not $line.StartsWith('READY ')) {
            $process.Kill($true)
            throw "The remote host process did not start: $(if ($errors.IsCompleted) { $errors.Result })"
        }
        $script:Remote = @{ Process = $process } + ($line.Substring(6) | ConvertFrom-Json -AsHashtable)
        $script:Remote
    }

    function Invoke-HelpExample([string] $Name, [int] $Number, [string] $Code) {
        $settings = $script:Settings["$Name#$Number"]
        if (-not $settings) { $settings = @{} }
        $folder = Join-Path $TestDrive "$Name-$Number"
        New-Item -ItemType Directory -Force $folder, (Join-Path $folder 'tmp') | Out-Null
        Set-Content (Join-Path $folder 'users.csv') "Key,Value,ExpectedVersion`nuser:10,ten,`nuser:11,eleven,`nuser:12,twelve,"
        $savedTemp = $env:TMPDIR
        Push-Location $folder
        try {
            $env:TMPDIR = Join-Path $folder 'tmp'   # <temp>/Replication/<name> stays in the test drive
            $clusterName = if ($settings.ContainsKey('Cluster')) { $settings.Cluster } else { 'help' }
            $cluster = $null
            if ($clusterName) {
                $cluster = New-ReplicationCluster -Name $clusterName -Path (Join-Path $folder 'cluster') -ClusterSecret $script:Secret
                Wait-ReplicationLeader -Cluster $cluster -Timeout 60 | Out-Null
                # Formed: every shard has all its voters (a new cluster grows them by membership changes after its leaders
                # exist, and a cold backup refuses while a shard has fewer), every node running and caught up.
                Wait-Condition {
                    @(Get-ReplicationShard -Cluster $cluster | Where-Object { $_.Voters.Count -lt $cluster.ReplicationFactor -or $_.Leader -eq 0 }).Count -eq 0 -and
                    @(Get-ReplicationNode -Cluster $cluster | Where-Object { $_.State -ne 'Running' -or $_.LagEntries -gt 0 }).Count -eq 0
                } -Timeout '00:01:00' -Because 'the fresh cluster has formed: all voters, every node running and caught up'
                'user:1', 'user:2', 'session:1', 'session:2' | ForEach-Object { [pscustomobject]@{ Key = $_; Value = "value of $_" } } | Set-ReplicationKey -Cluster $cluster
            }

            # host:port literals become endpoints that exist here, by role.
            $roles = @($settings.Endpoints)
            $needsRemote = ($roles | Where-Object { $_ -in 'Remote', 'RemoteEmpty', 'Seed', 'SecondSeed' }) -or "$($settings.Before)" -match '\$Remote'
            $remote = if ($needsRemote) { Start-RemoteHost }
            $literals = @([regex]::Matches($Code, '\b\d{1,3}(?:\.\d{1,3}){3}:\d+\b').Value | Select-Object -Unique)
            for ($i = 0; $i -lt $literals.Count; $i++) {
                $role = if ($i -lt $roles.Count -and $roles[$i]) { $roles[$i] } else { 'Local' }
                $endpoint = switch ($role) {
                    'Local' { $cluster.Endpoints[$i % $cluster.Endpoints.Count] }
                    'Remote' { $remote.Remote[$i % $remote.Remote.Count] }
                    'RemoteEmpty' { $remote.RemoteEmpty[0] }
                    'Seed' { $remote.Seed[0] }
                    'SecondSeed' { $remote.Seed[1] }
                    'Free' { Get-FreeEndpoint }
                }
                $Code = $Code.Replace($literals[$i], $endpoint)
            }

            $variables = @{
                secret               = $script:Secret
                RemoteEndpoints      = if ($remote) { $remote.Remote }
                RemoteEmptyEndpoints = if ($remote) { $remote.RemoteEmpty }
            }
            if ($settings.Blocking) { return Invoke-BlockingExample $Code $settings $variables }
            $run = [scriptblock]::Create(@"
param(`$__Code, `$__Before, `$__Variables)
foreach (`$__v in `$__Variables.GetEnumerator()) { Set-Variable -Name `$__v.Key -Value `$__v.Value }
$script:Prelude
if (`$__Before) { . ([scriptblock]::Create(`$__Before)) }
. ([scriptblock]::Create(`$__Code)) | Out-String -Width 120
"@)
            & $run $Code $settings.Before $variables
        }
        finally {
            Pop-Location
            $env:TMPDIR = $savedTemp
            Remove-AllReplicationClusters
        }
    }

    function Invoke-BlockingExample([string] $Code, [hashtable] $Settings, [hashtable] $Variables) {
        # Runs the example in a runspace of its own, waits until $Settings.Blocking holds, then stops it as Ctrl+C
        # would; the example must have run without an error up to there.
        $ps = [powershell]::Create()
        try {
            # A new runspace starts in the process's folder: move to the example's folder first.
            $text = "param(`$__Variables)`nforeach (`$__v in `$__Variables.GetEnumerator()) { Set-Variable -Name `$__v.Key -Value `$__v.Value }`n" +
                "Set-Location -LiteralPath '$((Get-Location).ProviderPath)'`nImport-Module '$Manifest'`n" + $script:Prelude + "`n" + $(if ($Settings.Before) { $Settings.Before + "`n" }) + $Code
            [void]$ps.AddScript($text).AddArgument($Variables)
            $async = $ps.BeginInvoke()
            $ready = [scriptblock]::Create($Settings.Blocking)
            Wait-Condition { (& $ready) -or $async.IsCompleted } -Timeout '00:02:00' -Because 'the blocking example is up'
            if ($async.IsCompleted) {
                $ps.EndInvoke($async) | Out-Null
                throw "The example ended before it was up: $($ps.Streams.Error | Select-Object -First 1)"
            }
            $ps.Stop()
            $ps.Streams.Error | Should -BeNullOrEmpty
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        }
        finally { $ps.Dispose() }
    }
}

AfterAll {
    if ($script:Remote) {
        $process = $script:Remote.Process
        $process.StandardInput.Close()   # the remote host removes its clusters and exits
        if (-not $process.WaitForExit(60000)) { $process.Kill($true) }
    }
    Remove-AllReplicationClusters
}

Describe 'Help examples' -Tag HelpExamples {
    It '<Name> example <Number> parses' -ForEach $examples {
        $errors = $null
        [System.Management.Automation.Language.Parser]::ParseInput($Code, [ref]$null, [ref]$errors) | Out-Null
        $errors | Should -BeNullOrEmpty
    }

    It '<Name> example <Number> runs' -ForEach $examples {
        $settings = $script:Settings["$Name#$Number"]
        if ($settings -and $settings.SyntaxOnly) { Set-ItResult -Skipped -Because $settings.SyntaxOnly; return }
        { Invoke-HelpExample -Name $Name -Number $Number -Code $Code } | Should -Not -Throw
    }

    It 'has settings only for examples that exist' -ForEach @(@{ Known = @($examples | ForEach-Object { "$($_.Name)#$($_.Number)" }) }) {
        foreach ($key in $script:Settings.Keys) { $key | Should -BeIn $Known -Because 'HelpExamples.psd1 names an example that is gone' }
    }
}
