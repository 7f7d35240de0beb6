<#
.SYNOPSIS
    Builds, tests, demonstrates and benchmarks the Replication module.
.DESCRIPTION
    Build  dotnet build of Replication.slnx (Release), then dotnet publish of the module to out/module
           (no runtime identifier: every platform's native SQLite ships under out/module/runtimes/),
           then the module's MAML help from the cmdlets' XML doc comments (module/New-MamlHelp.ps1)
           and the about_Replication topic into en-US/ (beside Replication.psd1, where Get-Help looks) and
           out/module/en-US/. out/module is a complete module folder too: it gets its own Replication.psd1
           and the format and type files, so Import-Module ./out/module/Replication.psd1 works (or copy it).
           -UpdateParameterManifest then rewrites tests/Pester/ParameterManifest.txt from the built cmdlets:
           the deliberate way to change the public surface that the Unit tests pin.
    Test   Build, then the xunit engine tests and the Pester module tests (each in its own process;
           Pester in a fresh pwsh, because a loaded assembly cannot be unloaded). Prints one line
           "N passed, N failed" (both runners summed) and exits nonzero if anything failed or a runner
           did not run.
    Demo   Build, then examples/demo.ps1 in a fresh pwsh.
    Bench  Builds bench/Replication.Bench and publishes the module, then runs the bench: three
           Replication node processes and (when an etcd binary is there, or Debian's etcd-server can be
           installed with apt-get) a 3-member etcd on loopback, driven alternately by a load process of
           their own at 1, 16 and 64 clients; the disk's own limits; the embedded cluster once. Prints
           Markdown tables and writes out/bench/ (bench.txt, bench.html, bench.svg, results.json). About
           5 minutes; -Quick is a ~1 minute smoke run (one round, 1-second phases, no embedded round);
           -Rounds N sets the rounds per system (default 2). The full run ends with the ring scenario
           (issue 9's goals: write latency and snapshot rate of a shard move under writes, leaders settling
           after a join, a restart and a leave; out/bench/ring.txt) and the failover scenarios (planned
           switchover, leader killed, leader paused 3 s; out/bench/failover.txt). -Only ring or -Only
           failover runs one alone; -Only snapshot-parts times each stage of a shard move's copy alone
           (reading, CRC, lane frames, loopback TCP, storing; one process, ~1 minute); -Only timing is the
           opt-in timing run (issue 10 item 8: idle and loaded
           phases of 10 minutes under busy loops, then leader kills; about 25 minutes per election
           timeout; out/bench/timing.txt). Not part of Test.
    Simulate  Builds and runs the deterministic cluster simulator (tests/Replication.Simulation):
           -Seeds N runs seeds 1..N (default 200; S..S+N-1 with -Seed); -Seed S alone replays one
           seed exactly, printing its fault trace; -Mutant M runs a deliberately broken system;
           -Trace prints every event of a replayed seed. Prints seeds run, operations checked,
           faults injected by kind and violations; exits nonzero on any violation.
           -Placement runs the placement simulation instead (ring, move planner, leader balancer at
           100 nodes x 4,096 shards; -Seed S picks the seed, default 1): prints one table row per
           scenario and exits nonzero if the planner or the balancer broke a promise.
    Crash  Build, then the SIGKILL crash-safety test with many rounds (REPLICATION_CRASH_ROUNDS, default
           here 25; the Test task runs 3). Opt-in: it takes about 2 s per round.
    Clean  Removes out/, the generated en-US/ help and every bin/ and obj/ folder.
    The version comes from Replication.psd1 (ModuleVersion) and is passed to dotnet as -p:Version.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 Test
.EXAMPLE
    dotnet pwsh ./build.ps1 Build -UpdateParameterManifest
.EXAMPLE
    dotnet pwsh ./build.ps1 Simulate -Seeds 1000
.EXAMPLE
    dotnet pwsh ./build.ps1 Simulate -Placement
.EXAMPLE
    dotnet pwsh ./build.ps1 Bench -Quick
#>
param(
    [ValidateSet('Build', 'Test', 'Demo', 'Bench', 'Crash', 'Clean', 'Simulate')]
    [string] $Task = 'Build',
    [int] $Seeds = 200,
    [int] $Seed,
    [string] $Mutant = 'None',
    [switch] $Trace,
    [switch] $Placement,
    [switch] $Quick,
    [int] $Rounds,
    [ValidateSet('ring', 'failover', 'timing', 'snapshot-parts')]
    [string] $Only,
    [switch] $UpdateParameterManifest
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$root = $PSScriptRoot
$out = Join-Path $root 'out'
$moduleOut = Join-Path $out 'module'
$resultsDir = Join-Path $out 'test-results'
$version = (Import-PowerShellDataFile (Join-Path $root 'Replication.psd1')).ModuleVersion

# Plain, quiet output from every child process.
$env:NO_COLOR = '1'
$env:POWERSHELL_TELEMETRY_OPTOUT = '1'
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'
if ($PSStyle) { $PSStyle.OutputRendering = 'PlainText' }

function Invoke-Dotnet {
    # Runs dotnet with the given arguments; throws when it exits nonzero. A simple function
    # ($args, no param block), so arguments like -o are not taken for common parameters.
    $Arguments = [string[]]$args
    Write-Host "> dotnet $($Arguments -join ' ')"
    & dotnet @Arguments | Out-Host
    if ($LASTEXITCODE -ne 0) { throw "dotnet $($Arguments[0]) failed with exit code $LASTEXITCODE." }
}

function Invoke-Build {
    Write-Host "Building Replication $version"
    Invoke-Dotnet build (Join-Path $root 'Replication.slnx') -c Release "-p:Version=$version"
    Invoke-Dotnet publish (Join-Path $root 'src/Replication.PowerShell') -c Release -o $moduleOut "-p:Version=$version"
    Add-ReadyToRun
    New-PublishedManifest
    New-ModuleHelp
    if ($UpdateParameterManifest) { Update-ParameterManifest }
}

function Add-ReadyToRun {
    # Precompiled (ReadyToRun) code for this machine's platform in the module's assemblies, so a started node runs
    # optimized code from its first request instead of tier-0 JIT code that the JIT then recompiles under load
    # (bench: 1,064 engine methods jitted by Start-ReplicationNode before, 42 after; see README "Benchmarks").
    # R2R code is used only by the runtime major version it was compiled for, so it is compiled for the runtime this
    # pwsh runs on (-p:RuntimeFrameworkVersion; the assemblies still target net8.0). A ReadyToRun assembly keeps its
    # IL: on another platform or runtime it is JIT-compiled as before. The RID-specific publish goes to a folder of its
    # own and only the managed assemblies are copied over the portable publish, which keeps runtimes/<rid>/native for
    # every platform (see NativeLibraryResolver).
    $rid = [System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier
    $runtime = [System.Environment]::Version.ToString(3)
    $r2rOut = Join-Path $out 'module-r2r'
    Invoke-Dotnet publish (Join-Path $root 'src/Replication.PowerShell') -c Release -o $r2rOut "-p:Version=$version" `
        -r $rid --self-contained false "-p:PublishReadyToRun=true" "-p:RuntimeFrameworkVersion=$runtime"
    Get-ChildItem $r2rOut -Filter *.dll | Where-Object { Test-Path (Join-Path $moduleOut $_.Name) } |
        Copy-Item -Destination $moduleOut -Force
}

function New-PublishedManifest {
    # out/module as a module folder of its own: the repository's manifest with paths relative to that folder,
    # and the format and type files beside it (the MAML help and about topics follow in New-ModuleHelp).
    Copy-Item (Join-Path $root 'module/Replication.format.ps1xml'), (Join-Path $root 'module/Replication.types.ps1xml') $moduleOut -Force
    $text = (Get-Content -Raw (Join-Path $root 'Replication.psd1')) -replace 'out/module/', '' -replace "'module/", "'"
    Set-Content -Path (Join-Path $moduleOut 'Replication.psd1') -Value $text -NoNewline
}

function Update-ParameterManifest {
    $script = Join-Path $root 'tests/Pester/Update-ParameterManifest.ps1'
    Write-Host "> dotnet pwsh (fresh process) tests/Pester/Update-ParameterManifest.ps1"
    & dotnet pwsh -NoProfile -NonInteractive -File $script | Out-Host
    if ($LASTEXITCODE -ne 0) { throw "Update-ParameterManifest.ps1 failed with exit code $LASTEXITCODE." }
}

function New-ModuleHelp {
    # Writes Replication.PowerShell.dll-Help.xml (MAML) from the cmdlets and their XML doc comments
    # (module/New-MamlHelp.ps1), in a fresh pwsh because it imports the module. Get-Help looks for a
    # binary module's help under the folder of the manifest it was imported through, not beside the
    # dll, so it goes to <root>/en-US (Import-Module ./Replication.psd1) and out/module/en-US (the dll).
    $script = Join-Path $root 'module/New-MamlHelp.ps1'
    Write-Host "> dotnet pwsh (fresh process) module/New-MamlHelp.ps1"
    & dotnet pwsh -NoProfile -NonInteractive -File $script -Manifest (Join-Path $root 'Replication.psd1') `
        -DocumentationFile (Join-Path $moduleOut 'Replication.PowerShell.xml') | Out-Host
    if ($LASTEXITCODE -ne 0) { throw "New-MamlHelp.ps1 failed with exit code $LASTEXITCODE." }
}

function Invoke-EngineTests {
    # Returns @{ Passed; Failed; Ran } from the xunit run's trx file.
    $trx = Join-Path $resultsDir 'engine.trx'
    Remove-Item $trx -ErrorAction SilentlyContinue
    Write-Host "> dotnet test tests/Replication.Engine.Tests"
    & dotnet test (Join-Path $root 'tests/Replication.Engine.Tests') -c Release --no-build "-p:Version=$version" `
        --logger 'trx;LogFileName=engine.trx' --results-directory $resultsDir | Out-Host
    $exit = $LASTEXITCODE
    if (-not (Test-Path $trx)) {
        Write-Host "xunit: no result file (dotnet test exit code $exit)."
        return @{ Passed = 0; Failed = 0; Ran = $false }
    }
    $counters = ([xml](Get-Content -Raw $trx)).TestRun.ResultSummary.Counters
    $count = { param($name) [int]('0' + $counters.GetAttribute($name)) }
    $passed = & $count 'passed'
    $failed = (& $count 'failed') + (& $count 'error') + (& $count 'timeout') + (& $count 'aborted')
    Write-Host "xunit: $passed passed, $failed failed (dotnet test exit code $exit)."
    $failures = @(([xml](Get-Content -Raw $trx)).TestRun.Results.UnitTestResult |
        Where-Object { $_.outcome -ne 'Passed' -and $_.outcome -ne 'NotExecuted' } |
        ForEach-Object { [pscustomobject]@{ Name = "xunit: $($_.testName)"; Message = "$($_.Output.ErrorInfo.Message)" } })
    # A nonzero exit with no failed test means the runner itself failed.
    return @{ Passed = $passed; Failed = $failed; Ran = ($exit -eq 0 -or $failed -gt 0); Failures = $failures }
}

function Invoke-PesterTests {
    # Returns @{ Passed; Failed; Ran } from Pester's JUnit result file.
    Invoke-Dotnet restore (Join-Path $root 'tests/Pester/Pester.Restore.proj')
    $globalPackages = (& dotnet nuget locals global-packages --list) -replace '^global-packages:\s*', ''
    if ($LASTEXITCODE -ne 0) { throw "dotnet nuget locals failed with exit code $LASTEXITCODE." }
    $pester = Join-Path $globalPackages.Trim() 'pester/5.7.1/tools/Pester.psd1'
    if (-not (Test-Path $pester)) { throw "Pester 5.7.1 not found at $pester after restore." }

    $junit = Join-Path $resultsDir 'pester.xml'
    Remove-Item $junit -ErrorAction SilentlyContinue
    $env:REPLICATION_PESTER_MODULE = $pester
    $env:REPLICATION_PESTER_TESTS = Join-Path $root 'tests/Pester'
    $env:REPLICATION_PESTER_RESULT = $junit
    # The child reads its inputs from the environment, so no quoting crosses the process boundary.
    $child = {
        $ErrorActionPreference = 'Stop'
        Import-Module $env:REPLICATION_PESTER_MODULE -RequiredVersion 5.7.1
        $config = New-PesterConfiguration
        $config.Run.Path = $env:REPLICATION_PESTER_TESTS
        $config.Run.Exit = $true
        $config.Output.Verbosity = 'Detailed'
        $config.TestResult.Enabled = $true
        $config.TestResult.OutputFormat = 'JUnitXml'
        $config.TestResult.OutputPath = $env:REPLICATION_PESTER_RESULT
        Invoke-Pester -Configuration $config
    }
    $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($child.ToString()))
    Write-Host "> dotnet pwsh (fresh process) Invoke-Pester tests/Pester"
    & dotnet pwsh -NoProfile -NonInteractive -OutputFormat Text -EncodedCommand $encoded | Out-Host
    $exit = $LASTEXITCODE
    if (-not (Test-Path $junit)) {
        Write-Host "Pester: no result file (exit code $exit)."
        return @{ Passed = 0; Failed = 0; Ran = $false }
    }
    $suites = ([xml](Get-Content -Raw $junit)).testsuites
    $count = { param($name) [int]('0' + $suites.GetAttribute($name)) }
    $total = & $count 'tests'
    $failed = (& $count 'failures') + (& $count 'errors')
    $skipped = & $count 'disabled'
    $passed = $total - $failed - $skipped
    Write-Host "Pester: $passed passed, $failed failed, $skipped skipped (exit code $exit)."
    $failures = @($suites.SelectNodes('//testcase[failure or error]') | ForEach-Object {
        $problem = if ($_.failure) { $_.failure } else { $_.error }
        $text = if ($problem -is [string]) { $problem } else { "$($problem.message) $($problem.InnerText)" }
        [pscustomobject]@{ Name = "Pester: $($_.name)"; Message = $text }
    })
    return @{ Passed = $passed; Failed = $failed; Ran = ($exit -eq 0 -or $failed -gt 0); Failures = $failures }
}

switch ($Task) {
    'Build' {
        Invoke-Build
    }
    'Test' {
        Invoke-Build
        New-Item -ItemType Directory -Force $resultsDir | Out-Null
        $engine = Invoke-EngineTests
        $module = Invoke-PesterTests
        $passed = $engine.Passed + $module.Passed
        $failed = $engine.Failed + $module.Failed
        # The failed tests again at the very end, so that a log cut to its tail still names them.
        foreach ($failure in @($engine.Failures) + @($module.Failures)) {
            if (-not $failure) { continue }
            $lines = @("$($failure.Message)".Trim() -split "`r?`n" | Select-Object -First 6)
            Write-Host "FAILED $($failure.Name)"
            foreach ($line in $lines) { Write-Host "    $line" }
        }
        Write-Host "$passed passed, $failed failed"
        if ($failed -gt 0 -or -not $engine.Ran -or -not $module.Ran) {
            if (-not $engine.Ran) { Write-Host 'The xunit runner did not run to completion.' }
            if (-not $module.Ran) { Write-Host 'The Pester runner did not run to completion.' }
            exit 1
        }
    }
    'Demo' {
        Invoke-Build
        Write-Host '> dotnet pwsh (fresh process) examples/demo.ps1'
        & dotnet pwsh -NoProfile -NonInteractive -File (Join-Path $root 'examples/demo.ps1') | Out-Host
        if ($LASTEXITCODE -ne 0) { throw "The demo failed with exit code $LASTEXITCODE." }
    }
    'Bench' {
        # Only what the bench runs: its own project (engine included) and the published module (for the
        # Start-ReplicationNode timing); the test projects and the help are not needed, and on the shared
        # 2-core machine the full build can take minutes.
        Write-Host "Building Replication $version (bench and module)"
        # The bench itself is published ReadyToRun too (its node role is the node process it measures, so it runs
        # precompiled code as the module does) and run from out/bench-bin.
        $benchBin = Join-Path $out 'bench-bin'
        Invoke-Dotnet publish (Join-Path $root 'bench/Replication.Bench') -c Release -o $benchBin "-p:Version=$version" `
            -r ([System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier) --self-contained false "-p:PublishReadyToRun=true"
        Invoke-Dotnet publish (Join-Path $root 'src/Replication.PowerShell') -c Release -o $moduleOut "-p:Version=$version"
        Add-ReadyToRun
        # The module and this pwsh's own pwsh.dll let the bench time Start-ReplicationNode in a fresh pwsh.
        $benchArgs = @('--out', (Join-Path $out 'bench'), '--module', (Join-Path $root 'Replication.psd1'), '--pwsh', (Join-Path $PSHOME 'pwsh.dll'))
        if ($Quick) { $benchArgs += '--quick' }
        if ($PSBoundParameters.ContainsKey('Rounds')) { $benchArgs += @('--rounds', $Rounds) }
        if ($Only) { $benchArgs += @('--only', $Only) }
        Invoke-Dotnet (Join-Path $benchBin 'Replication.Bench.dll') @benchArgs
    }
    'Simulate' {
        $project = Join-Path $root 'tests/Replication.Simulation'
        Invoke-Dotnet build $project -c Release "-p:Version=$version"
        if ($Placement) {
            $simArgs = @('--placement')
            if ($PSBoundParameters.ContainsKey('Seed')) { $simArgs += @('--seed', $Seed) }
        }
        else {
            $simArgs = @('--mutant', $Mutant)
            if ($PSBoundParameters.ContainsKey('Seed')) { $simArgs += @('--seed', $Seed) }
            if ($PSBoundParameters.ContainsKey('Seeds') -or -not $PSBoundParameters.ContainsKey('Seed')) { $simArgs += @('--seeds', $Seeds) }
            if ($Trace) { $simArgs += '--trace' }
        }
        Write-Host "> dotnet run Replication.Simulation $($simArgs -join ' ')"
        & dotnet run --no-build -c Release --project $project -- @simArgs | Out-Host
        if ($LASTEXITCODE -ne 0) { Write-Host "The simulation found violations (exit code $LASTEXITCODE)."; exit $LASTEXITCODE }
    }
    'Crash' {
        Invoke-Build
        if (-not $env:REPLICATION_CRASH_ROUNDS) { $env:REPLICATION_CRASH_ROUNDS = '25' }
        Write-Host "Crash-safety test: $env:REPLICATION_CRASH_ROUNDS rounds (seed: REPLICATION_CRASH_SEED, default fixed)"
        Invoke-Dotnet test (Join-Path $root 'tests/Replication.Engine.Tests') -c Release --no-build "-p:Version=$version" --filter 'FullyQualifiedName~CrashSafetyTests'
    }
    'Clean' {
        Remove-Item -Recurse -Force $out, (Join-Path $root 'en-US') -ErrorAction SilentlyContinue
        Get-ChildItem -Path (Join-Path $root 'src'), (Join-Path $root 'tests'), (Join-Path $root 'bench') -Directory -Recurse -Include bin, obj -ErrorAction SilentlyContinue |
            Remove-Item -Recurse -Force
        Write-Host 'Removed out/, en-US/ and every bin/ and obj/ folder.'
    }
}
