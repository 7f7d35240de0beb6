# The public surface is pinned in ParameterManifest.txt (generated, see Update-ParameterManifest.ps1): a cmdlet,
# parameter, parameter set, type, pipeline binding, validation, completer or ConfirmImpact that changes without
# the manifest changing with it fails here.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    . (Join-Path $PSScriptRoot 'ParameterManifest.ps1')
    Import-Module $Manifest -Force
}

Describe 'Parameter manifest' -Tag Unit {
    It 'matches the built module (regenerate deliberately: ./build.ps1 Build -UpdateParameterManifest)' {
        $file = Join-Path $PSScriptRoot 'ParameterManifest.txt'
        $file | Should -Exist
        $expected = @(Get-Content $file | Where-Object { $_ -and -not $_.StartsWith('#') })
        $actual = @(Get-ReplicationParameterManifest)
        $diff = @(Compare-Object $expected $actual -CaseSensitive | ForEach-Object {
                $(if ($_.SideIndicator -eq '<=') { '  pinned but gone: ' } else { '  built but not pinned: ' }) + $_.InputObject.Trim()
            })
        $because = "the surface changed:`n$($diff -join "`n")`nIf the change is deliberate: dotnet pwsh ./build.ps1 Build -UpdateParameterManifest, and commit ParameterManifest.txt"
        $diff.Count | Should -Be 0 -Because $because
        ($actual -join "`n") | Should -Be ($expected -join "`n") -Because 'the order of the manifest is the order of the cmdlets and parameters'
    }

    It 'lists every exported cmdlet' {
        $pinned = @(Get-Content (Join-Path $PSScriptRoot 'ParameterManifest.txt') | Where-Object { $_ -match '^[A-Z][a-z]+-' })
        $pinned | Should -Be @(Get-Command -Module Replication -CommandType Cmdlet | Sort-Object Name | ForEach-Object Name)
        $pinned | Should -Be @((Import-PowerShellDataFile $Manifest).CmdletsToExport | Sort-Object)
    }
}
