<#
.SYNOPSIS
    Rewrites tests/Pester/ParameterManifest.txt from the built module's cmdlets.
.DESCRIPTION
    The deliberate way to change the public surface: after changing a cmdlet's parameters, parameter sets,
    pipeline bindings, validation or ConfirmImpact (or adding a cmdlet), build, run this, and commit the
    manifest's diff with the change. Replication.ParameterManifest.Tests.ps1 fails until the two agree.
    Runs in a fresh pwsh (a loaded module assembly cannot be reloaded); build.ps1 Build -UpdateParameterManifest
    calls it after the build.
.EXAMPLE
    dotnet pwsh ./build.ps1 Build -UpdateParameterManifest
.EXAMPLE
    dotnet pwsh -NoProfile -File tests/Pester/Update-ParameterManifest.ps1
#>
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
. (Join-Path $PSScriptRoot 'ParameterManifest.ps1')
Import-Module (Join-Path $PSScriptRoot '../../Replication.psd1') -Force
$path = Join-Path $PSScriptRoot 'ParameterManifest.txt'
$header = @(
    '# The public surface of the Replication module, pinned: every exported cmdlet with its ConfirmImpact, parameter'
    '# sets, output types, and each parameter''s type, Mandatory/Position, pipeline binding and attributes per set.'
    '# Generated: dotnet pwsh ./build.ps1 Build -UpdateParameterManifest (tests/Pester/Update-ParameterManifest.ps1).'
    '# Replication.ParameterManifest.Tests.ps1 fails when the built module differs: change it deliberately.'
)
$lines = @($header) + @(Get-ReplicationParameterManifest)
[IO.File]::WriteAllText($path, ($lines -join "`n") + "`n", [Text.UTF8Encoding]::new($false))
Write-Host "Wrote $path ($(@(Get-Command -Module Replication -CommandType Cmdlet).Count) cmdlets, $($lines.Count) lines)"
