# The public surface of the Replication module as text, one line per fact, so a change to it shows as a diff
# of tests/Pester/ParameterManifest.txt and is always deliberate (the PowerShell repository pins its cmdlets the
# same way). Dot-sourced by Replication.ParameterManifest.Tests.ps1 (compares) and Update-ParameterManifest.ps1
# (rewrites the file). Not a test file itself.

function Get-ReplicationParameterManifest {
    <#
    .SYNOPSIS
        The manifest lines of every cmdlet the imported Replication module exports, sorted by name.
    .DESCRIPTION
        Per cmdlet: its ConfirmImpact, ShouldProcess support, default parameter set and output types; then one
        line per parameter and parameter set: type, Mandatory, Position, pipeline binding, aliases, validation,
        transformation and completer attributes, and whether it is hidden (DontShow). "sets=*" means every set.
        Common parameters (and WhatIf/Confirm, implied by ShouldProcess) are left out.
    #>
    $skip = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
    $lines = [System.Collections.Generic.List[string]]::new()
    foreach ($command in Get-Command -Module Replication -CommandType Cmdlet | Sort-Object Name) {
        $attribute = $command.ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0]
        $outputs = @($command.OutputType | ForEach-Object { if ($_.Type) { $_.Type.ToString() } else { $_.Name } } | Sort-Object)
        $lines.Add($command.Name)
        $lines.Add(('  ConfirmImpact={0} SupportsShouldProcess={1} DefaultSet={2} OutputType={3}' -f
                $attribute.ConfirmImpact, $attribute.SupportsShouldProcess, $(if ($command.DefaultParameterSet) { $command.DefaultParameterSet } else { '-' }), ($outputs -join ',')))
        foreach ($parameter in $command.Parameters.Values | Where-Object Name -NotIn $skip | Sort-Object Name) {
            $details = @(Get-ParameterDetail $parameter)
            $sets = $parameter.ParameterSets
            if ($sets.Count -eq 1 -and $sets.ContainsKey('__AllParameterSets')) {
                $lines.Add((@("  -$($parameter.Name) [$($parameter.ParameterType)] sets=*") + (Get-SetDetail $sets['__AllParameterSets']) + $details) -join ' ')
                continue
            }
            foreach ($setName in $sets.Keys | Sort-Object) {
                $shown = if ($setName -eq '__AllParameterSets') { '*' } else { $setName }
                $lines.Add((@("  -$($parameter.Name) [$($parameter.ParameterType)] sets=$shown") + (Get-SetDetail $sets[$setName]) + $details) -join ' ')
            }
        }
    }
    $lines
}

function Get-SetDetail([System.Management.Automation.ParameterSetMetadata] $Set) {
    if ($Set.IsMandatory) { 'mandatory' }
    if ($Set.Position -ge 0) { "position=$($Set.Position)" }
    $pipeline = @(if ($Set.ValueFromPipeline) { 'ByValue' }; if ($Set.ValueFromPipelineByPropertyName) { 'ByPropertyName' })
    if ($pipeline) { "pipeline=$($pipeline -join ',')" }
    if ($Set.ValueFromRemainingArguments) { 'remaining' }
}

function Get-ParameterDetail([System.Management.Automation.ParameterMetadata] $Parameter) {
    if ($Parameter.Aliases.Count) { "aliases=$(@($Parameter.Aliases | Sort-Object) -join ',')" }
    if ($Parameter.Attributes.Where({ $_ -is [System.Management.Automation.ParameterAttribute] -and $_.DontShow })) { 'hidden' }
    foreach ($a in $Parameter.Attributes | Sort-Object { $_.GetType().Name }) {
        switch ($a) {
            { $_ -is [System.Management.Automation.ValidateRangeAttribute] } { "range=$($a.MinRange)..$($a.MaxRange)" }
            { $_ -is [System.Management.Automation.ValidateSetAttribute] } { "set=$($a.ValidValues -join '|')" }
            { $_ -is [System.Management.Automation.ValidatePatternAttribute] } { "pattern=$($a.RegexPattern)" }
            { $_ -is [System.Management.Automation.ValidateLengthAttribute] } { "length=$($a.MinLength)..$($a.MaxLength)" }
            { $_ -is [System.Management.Automation.ValidateNotNullOrEmptyAttribute] } { 'notNullOrEmpty' }
            { $_ -is [System.Management.Automation.ValidateNotNullAttribute] } { 'notNull' }
            { $_ -is [System.Management.Automation.AllowEmptyStringAttribute] } { 'allowEmptyString' }
            { $_ -is [System.Management.Automation.AllowNullAttribute] } { 'allowNull' }
            { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] } { 'wildcards' }
            { $_ -is [System.Management.Automation.ArgumentCompleterAttribute] } { "completer=$($a.Type.Name)" }
            { $_ -is [System.Management.Automation.ArgumentTransformationAttribute] } { "transform=$($a.GetType().Name -replace 'Attribute$')" }
            { $_ -is [System.Management.Automation.ValidateArgumentsAttribute] -and $_.GetType().Assembly -ne [System.Management.Automation.PSCmdlet].Assembly } {
                "validate=$($a.GetType().Name -replace 'Attribute$')$(if ($a.PSObject.Properties['Minimum']) { ":$($a.Minimum)" })"
            }
        }
    }
}
