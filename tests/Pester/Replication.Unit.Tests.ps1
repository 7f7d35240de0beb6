# Unit-level checks of the module surface: the manifest and the rules its cmdlets follow (each cmdlet's parameters
# are pinned in ParameterManifest.txt, see Replication.ParameterManifest.Tests.ps1), and
# that the native SQLite library loads in this (real) pwsh, which ignores the module's .deps.json.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force
}

Describe 'Module surface' -Tag Unit {
    It 'exports the cmdlets of its manifest (ParameterManifest.txt pins each one''s parameters) and no functions or aliases' {
        $module = Get-Module Replication
        $module.Version | Should -Be ([version](Import-PowerShellDataFile $Manifest).ModuleVersion)
        @($module.ExportedCmdlets.Keys | Sort-Object) | Should -Be @((Import-PowerShellDataFile $Manifest).CmdletsToExport | Sort-Object)
        $module.ExportedFunctions.Count | Should -Be 0
        $module.ExportedAliases.Count | Should -Be 0
    }

    It 'binds node and key identities from the pipeline by property name' {
        foreach ($pair in @(@('Stop-ReplicationNode', 'Id'), @('Start-ReplicationNode', 'Id'), @('Get-ReplicationNode', 'Id'),
                @('Set-ReplicationKey', 'Key'), @('Set-ReplicationKey', 'Value'), @('Set-ReplicationKey', 'ExpectedVersion'),
                @('Remove-ReplicationKey', 'Key'), @('Get-ReplicationKey', 'Key'), @('Stop-ReplicationNode', 'Cluster'))) {
            $parameter = (Get-Command $pair[0]).Parameters[$pair[1]]
            $parameter.Attributes.Where({ $_ -is [System.Management.Automation.ParameterAttribute] }).ValueFromPipelineByPropertyName |
                Should -Contain $true -Because "$($pair[0]) -$($pair[1])"
        }
        (Get-Command Remove-ReplicationCluster).Parameters['Cluster'].Attributes.Where({ $_ -is [System.Management.Automation.ParameterAttribute] }).ValueFromPipeline |
            Should -Contain $true
    }

    It 'offers Start-ReplicationNode -Id (Embedded) and -Path -Listen (Process) parameter sets' {
        (Get-Command Start-ReplicationNode).ParameterSets.Name | Sort-Object | Should -Be @('Embedded', 'Process')
    }

    It 'asks for confirmation before destructive cmdlets (ConfirmImpact High), and not before a restore that only creates or fills an empty cluster' {
        foreach ($type in [Replication.PowerShell.Commands.RemoveReplicationClusterCommand], [Replication.PowerShell.Commands.StopReplicationNodeCommand],
                [Replication.PowerShell.Commands.RestoreReplicationNodeCommand], [Replication.PowerShell.Commands.BackupReplicationNodeCommand]) {
            $type.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0].ConfirmImpact | Should -Be 'High'
        }
        [Replication.PowerShell.Commands.RestoreReplicationClusterCommand].GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0].ConfirmImpact |
            Should -Be 'Low'
    }

    It 'has a default table view for each output type' {
        foreach ($type in 'Replication.ReplicationCluster', 'Replication.ReplicationNode',
                'Replication.ReplicationShard', 'Replication.ReplicationKey',
                'Replication.ReplicationBackup', 'Replication.BackupShard',
                'Replication.ReplicationConsistency', 'Replication.DivergentRange') {
            Get-FormatData -TypeName $type | Should -Not -BeNullOrEmpty -Because $type
        }
        $nodeColumns = (Get-FormatData -TypeName 'Replication.ReplicationNode').FormatViewDefinition[0].Control.Headers.Label
        $nodeColumns | Should -Be @('Id', 'State', 'Led', 'Hosted', 'Term', 'Commit', 'Applied', 'LagEntries', 'Endpoint')
        $keyColumns = (Get-FormatData -TypeName 'Replication.ReplicationKey').FormatViewDefinition[0].Control.Headers.Label
        $keyColumns | Should -Be @('Key', 'Value', 'Version', 'Shard', 'Index')
    }
}

Describe 'The published module folder' -Tag Unit {
    It 'imports from out/module on its own, with its help and about_Replication (a fresh pwsh)' {
        $script = "Import-Module ./out/module/Replication.psd1; (Get-Module Replication).ModuleBase; @(Get-Command -Module Replication).Count; " +
            "(Get-Help about_Replication | Out-String) -match 'THE RING'; (Get-Help Get-ReplicationNode).Synopsis"
        Push-Location $RepoRoot
        try { $answer = @(& dotnet pwsh -NoProfile -NonInteractive -Command $script) } finally { Pop-Location }
        $LASTEXITCODE | Should -Be 0
        $answer[0] | Should -Be (Join-Path $RepoRoot 'out/module')
        [int]$answer[1] | Should -Be @((Import-PowerShellDataFile $Manifest).CmdletsToExport).Count
        $answer[2] | Should -Be 'True'
        $answer[3] | Should -Not -BeLike 'Get-ReplicationNode *' -Because 'the MAML help is there, not syntax only'
    }
}

Describe 'Native SQLite in a real pwsh' -Tag Unit {
    It 'opens a SQLite connection from the published module folder (runtimes/<rid>/native resolved by the module)' {
        $moduleDir = Split-Path (Get-Module Replication).Path
        [System.Reflection.Assembly]::LoadFrom((Join-Path $moduleDir 'Microsoft.Data.Sqlite.dll')) | Out-Null
        $connection = [Microsoft.Data.Sqlite.SqliteConnection]::new('Data Source=:memory:')
        try {
            $connection.Open()
            $connection.ServerVersion | Should -Match '^3\.'
        }
        finally { $connection.Dispose() }
    }

    It 'ships the native library for every platform SQLite supports (no runtime identifier at publish)' {
        $moduleDir = Split-Path (Get-Module Replication).Path
        foreach ($file in 'runtimes/linux-x64/native/libe_sqlite3.so', 'runtimes/linux-musl-x64/native/libe_sqlite3.so',
                'runtimes/linux-arm64/native/libe_sqlite3.so', 'runtimes/osx-arm64/native/libe_sqlite3.dylib',
                'runtimes/osx-x64/native/libe_sqlite3.dylib', 'runtimes/win-x64/native/e_sqlite3.dll', 'runtimes/win-arm64/native/e_sqlite3.dll') {
            Join-Path $moduleDir $file | Should -Exist
        }
    }
}

Describe 'Built-in help' -Tag Unit {
    # build.ps1 generates the MAML help (build/New-MamlHelp.ps1) from the cmdlets' XML doc comments.
    # Without it Get-Help shows only the syntax, and the synopsis IS the syntax.
    It '<Name> has a synopsis, a description, examples and a description of every parameter' -ForEach @(
        (Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../Replication.psd1')).CmdletsToExport | ForEach-Object { @{ Name = $_ } }
    ) {
        $help = Get-Help $Name -Full
        $synopsis = "$($help.Synopsis)".Trim()
        $synopsis | Should -Not -BeNullOrEmpty
        $synopsis | Should -Not -BeLike "$Name *" -Because 'a synopsis that starts with the cmdlet name is the syntax (no help found)'
        $synopsis | Should -Not -Be (Get-Command $Name -Syntax).Trim()

        ($help.description.Text -join ' ').Trim() | Should -Not -BeNullOrEmpty -Because 'the description'
        $examples = @($help.examples.example)
        $examples.Count | Should -BeGreaterOrEqual 1
        foreach ($example in $examples) {
            "$($example.code)".Trim() | Should -Not -BeNullOrEmpty -Because "$($example.title) has code"
            ($example.remarks.Text -join ' ').Trim() | Should -Not -BeNullOrEmpty -Because "$($example.title) has a remark"
        }

        $common = [System.Management.Automation.PSCmdlet]::CommonParameters
        # Hidden parameters ([Parameter(DontShow)], e.g. PipelineInput) are left out of the help on purpose.
        $names = (Get-Command $Name).Parameters.Values | Where-Object { $_.Name -notin $common -and -not $_.Attributes.Where({ $_ -is [System.Management.Automation.ParameterAttribute] -and $_.DontShow }) } |
            ForEach-Object Name
        $described = @{}
        foreach ($parameter in @($help.parameters.parameter)) { $described[$parameter.name] = ($parameter.description.Text -join ' ').Trim() }
        foreach ($parameterName in $names) {
            $described[$parameterName] | Should -Not -BeNullOrEmpty -Because "-$parameterName of $Name needs a description"
        }
    }
}
