<#
.SYNOPSIS
    Writes the module's MAML help file (Replication.PowerShell.dll-Help.xml) from the cmdlets themselves.
.DESCRIPTION
    Run by build.ps1 (Build task) after dotnet publish, in a fresh pwsh (the module is imported here).
    Names, verbs, nouns, parameter sets, types, Mandatory, Position, pipeline input, aliases, wildcard
    support, defaults and output types come from the imported cmdlets (Get-Command and reflection).
    Text comes from the XML documentation file the compiler writes (GenerateDocumentationFile):
    synopsis = the first sentence of the cmdlet class's <summary>, description = the whole summary,
    parameter description = the property's <summary>, examples = the class's <example> elements
    (a <code> element and a one-sentence remark each), related links = about_Replication, the cmdlets of
    the same noun and the class's <seealso cref="T:...Command"/> elements. Common and hidden (DontShow)
    parameters are not listed; -WhatIf and -Confirm get the standard descriptions. Fails if a cmdlet or
    parameter has no text, or a cmdlet has no related cmdlet, so a gap breaks the build instead of
    shipping syntax-only help. The about_ topics under module/<culture>/ are copied beside the MAML file.
.PARAMETER Manifest
    The module manifest to import (the repository's Replication.psd1).
.PARAMETER DocumentationFile
    The compiler's XML documentation file of Replication.PowerShell.
.PARAMETER Culture
    The culture folder to write into. Default en-US (Get-Help falls back to it for other cultures).
.NOTES
    Get-Help looks for a binary module's help file in a culture folder under the module's base: the
    folder of the manifest it was imported through (Import-Module ./Replication.psd1), not the dll's
    folder. So the file is written to <manifest folder>/<culture>/ and, for an import of the dll
    itself, to <dll folder>/<culture>/.
.EXAMPLE
    dotnet pwsh -NoProfile -File build/New-MamlHelp.ps1 -Manifest ./Replication.psd1 -DocumentationFile out/module/Replication.PowerShell.xml
#>
param(
    [Parameter(Mandatory)] [string] $Manifest,
    [Parameter(Mandatory)] [string] $DocumentationFile,
    [string] $Culture = 'en-US'
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$shouldProcessText = @{
    WhatIf  = 'Shows what would happen if the cmdlet runs. The cmdlet is not run.'
    Confirm = 'Prompts you for confirmation before running the cmdlet.'
}

function ConvertTo-PlainText([System.Xml.XmlNode] $Node) {
    # Inner text of a doc-comment element: <see cref="T:A.B.C"/> becomes C, <c>x</c> becomes x,
    # <paramref name="p"/> becomes p, <para> breaks paragraphs. Returns paragraphs, whitespace collapsed.
    $builder = [System.Text.StringBuilder]::new()
    foreach ($child in $Node.ChildNodes) {
        switch ($child.NodeType) {
            'Text' { [void]$builder.Append($child.Value) }
            'Element' {
                switch ($child.LocalName) {
                    { $_ -in 'see', 'seealso' } {
                        $ref = $child.GetAttribute('cref'); if (-not $ref) { $ref = $child.GetAttribute('langword') }
                        [void]$builder.Append(($ref -replace '^[A-Z]:', '' -split '\.')[-1])
                    }
                    { $_ -in 'paramref', 'typeparamref' } { [void]$builder.Append($child.GetAttribute('name')) }
                    'para' { [void]$builder.Append("`n`n").Append((ConvertTo-PlainText $child) -join "`n`n").Append("`n`n") }
                    default { [void]$builder.Append($child.InnerText) }
                }
            }
        }
    }
    @($builder.ToString() -split '\n\s*\n' | ForEach-Object { ($_ -replace '\s+', ' ').Trim() } | Where-Object { $_ })
}

function Get-FirstSentence([string] $Text) {
    # Up to the first '.' that ends a sentence (followed by whitespace or the end).
    $match = [regex]::Match($Text, '^.*?[.!?](?=\s|$)')
    if ($match.Success) { $match.Value } else { $Text }
}

function Get-CodeText([System.Xml.XmlNode] $Node) {
    # A <code> element's lines with their common indentation and blank edges removed.
    $lines = @($Node.InnerText -split '\r?\n')
    while ($lines.Count -gt 0 -and -not $lines[0].Trim()) { $lines = @($lines | Select-Object -Skip 1) }
    while ($lines.Count -gt 0 -and -not $lines[-1].Trim()) { $lines = @($lines | Select-Object -SkipLast 1) }
    $indent = ($lines | Where-Object { $_.Trim() } | ForEach-Object { $_.Length - $_.TrimStart().Length } | Measure-Object -Minimum).Minimum
    ($lines | ForEach-Object { if ($_.Length -ge $indent) { $_.Substring($indent) } else { $_.TrimStart() } }) -join "`n"
}

function Get-TypeName([type] $Type) {
    # The name Get-Help shows for a parameter value: element type names without namespace, Nullable unwrapped.
    $inner = [Nullable]::GetUnderlyingType($Type)
    if ($inner) { $Type = $inner }
    if ($Type.IsArray) { return (Get-TypeName $Type.GetElementType()) + '[]' }
    $Type.Name
}

# --- load -------------------------------------------------------------------------------------------
$docs = [xml](Get-Content -Raw $DocumentationFile)
$members = @{}
foreach ($member in $docs.doc.members.member) { $members[$member.name] = $member }

$module = Import-Module $Manifest -Force -PassThru
$dllName = [IO.Path]::GetFileName($module.RootModule)
$common = [System.Management.Automation.PSCmdlet]::CommonParameters
$cmdletByType = @{}
foreach ($c in $module.ExportedCmdlets.Values) { $cmdletByType[$c.ImplementingType.FullName] = $c.Name }
$problems = [System.Collections.Generic.List[string]]::new()

# --- write ------------------------------------------------------------------------------------------
$ns = @{
    msh     = 'http://msh'
    maml    = 'http://schemas.microsoft.com/maml/2004/10'
    command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
    dev     = 'http://schemas.microsoft.com/maml/dev/2004/10'
}
$settings = [System.Xml.XmlWriterSettings]::new()
$settings.Indent = $true
$settings.Encoding = [System.Text.UTF8Encoding]::new($false)
$stream = [System.IO.MemoryStream]::new()
$w = [System.Xml.XmlWriter]::Create($stream, $settings)

function Write-Paras([string] $Prefix, [string] $Element, [string[]] $Paragraphs) {
    $w.WriteStartElement($Prefix, $Element, $ns[$Prefix])
    foreach ($p in $Paragraphs) { $w.WriteElementString('maml', 'para', $ns.maml, $p) }
    $w.WriteEndElement()
}

function Write-Parameter($Info, [string[]] $Description, [string] $Default, [bool] $Globbing, [bool] $InSyntax) {
    # One <command:parameter>; $Info is a CommandParameterInfo (Mandatory, Position, pipeline input per set).
    $pipeline = @(if ($Info.ValueFromPipeline) { 'ByValue' }; if ($Info.ValueFromPipelineByPropertyName) { 'ByPropertyName' })
    $isSwitch = $Info.ParameterType -eq [System.Management.Automation.SwitchParameter]
    $w.WriteStartElement('command', 'parameter', $ns.command)
    $w.WriteAttributeString('required', $Info.IsMandatory.ToString().ToLowerInvariant())
    $w.WriteAttributeString('variableLength', $Info.ParameterType.IsArray.ToString().ToLowerInvariant())
    $w.WriteAttributeString('globbing', $Globbing.ToString().ToLowerInvariant())
    $w.WriteAttributeString('pipelineInput', $(if ($pipeline) { "True ($($pipeline -join ', '))" } else { 'False' }))
    $w.WriteAttributeString('position', $(if ($Info.Position -ge 0) { [string]($Info.Position + 1) } else { 'named' }))
    $w.WriteAttributeString('aliases', $(if ($Info.Aliases.Count) { $Info.Aliases -join ', ' } else { 'none' }))
    $w.WriteElementString('maml', 'name', $ns.maml, $Info.Name)
    Write-Paras 'maml' 'description' $Description
    if (-not ($isSwitch -and $InSyntax)) {
        $w.WriteStartElement('command', 'parameterValue', $ns.command)
        $w.WriteAttributeString('required', (-not $isSwitch).ToString().ToLowerInvariant())
        $w.WriteAttributeString('variableLength', $Info.ParameterType.IsArray.ToString().ToLowerInvariant())
        $w.WriteString((Get-TypeName $Info.ParameterType))
        $w.WriteEndElement()
    }
    $w.WriteStartElement('dev', 'type', $ns.dev)
    $w.WriteElementString('maml', 'name', $ns.maml, (Get-TypeName $Info.ParameterType))
    $w.WriteEndElement()
    $w.WriteElementString('dev', 'defaultValue', $ns.dev, $Default)
    $w.WriteEndElement()
}

$w.WriteStartDocument()
$w.WriteStartElement('helpItems', $ns.msh)
$w.WriteAttributeString('schema', 'maml')

# Get-Command, not $module.ExportedCmdlets: only Get-Command's parameter sets include dynamic parameters (IDynamicParameters).
foreach ($command in Get-Command -Module $module.Name -CommandType Cmdlet | Sort-Object Name) {
    $type = $command.ImplementingType
    $classDoc = $members["T:$($type.FullName)"]
    $description = @(if ($classDoc -and $classDoc['summary']) { ConvertTo-PlainText $classDoc['summary'] })
    if (-not $description) { $problems.Add("$($command.Name): no <summary> on $($type.FullName)"); continue }
    $examples = @(if ($classDoc) { $classDoc.SelectNodes('example') })
    if (-not $examples) { $problems.Add("$($command.Name): no <example> on $($type.FullName)") }

    # Parameter text, default value and wildcard support, by parameter name.
    $instance = [Activator]::CreateInstance($type)
    $parameterDoc = @{}
    # Hidden parameters ([Parameter(DontShow = true)], e.g. PipelineInput) are not part of the help.
    $hidden = @($command.Parameters.Values | Where-Object { $_.Attributes.Where({ $_ -is [System.Management.Automation.ParameterAttribute] -and $_.DontShow }) } | ForEach-Object Name)
    $skip = @($common) + $hidden
    foreach ($name in $command.Parameters.Keys | Where-Object { $_ -notin $skip }) {
        if ($shouldProcessText.ContainsKey($name)) {
            $parameterDoc[$name] = @{ Text = @($shouldProcessText[$name]); Default = 'False'; Globbing = $false }
            continue
        }
        $property = $type.GetProperty($name, [System.Reflection.BindingFlags]'Public, Instance')
        $holder = $instance
        if (-not $property) {
            # A dynamic parameter (IDynamicParameters) is declared as a property of an object the cmdlet keeps in a field
            # (e.g. RingSettingsParameters): its text and default come from there.
            foreach ($field in $type.GetFields([System.Reflection.BindingFlags]'NonPublic, Instance')) {
                $candidate = $field.FieldType.GetProperty($name, [System.Reflection.BindingFlags]'Public, Instance')
                if ($candidate) { $property = $candidate; $holder = $field.GetValue($instance); break }
            }
        }
        if (-not $property) { $problems.Add("$($command.Name) -$($name): no property declares it"); continue }
        $doc = $members["P:$($property.DeclaringType.FullName).$name"]
        $text = @(if ($doc -and $doc['summary']) { ConvertTo-PlainText $doc['summary'] })
        if (-not $text) { $problems.Add("$($command.Name) -$($name): no <summary> on $($property.DeclaringType.FullName).$name") }
        $value = $property.GetValue($holder)
        $default = if ($null -eq $value -or ($value -is [array] -and $value.Count -eq 0) -or ($value -is [string] -and -not $value)) { 'None' }
        elseif ($value -is [System.Management.Automation.SwitchParameter]) { [string]$value.IsPresent } else { [string]$value }
        $parameterDoc[$name] = @{ Text = $text; Default = $default; Globbing = [bool]$command.Parameters[$name].Attributes.Where({ $_ -is [System.Management.Automation.SupportsWildcardsAttribute] }) }
    }
    if ($instance -is [IDisposable]) { $instance.Dispose() }

    $w.WriteStartElement('command', 'command', $ns.command)
    $w.WriteAttributeString('xmlns', 'maml', $null, $ns.maml)
    $w.WriteAttributeString('xmlns', 'dev', $null, $ns.dev)
    $w.WriteStartElement('command', 'details', $ns.command)
    $w.WriteElementString('command', 'name', $ns.command, $command.Name)
    $w.WriteElementString('command', 'verb', $ns.command, $command.Verb)
    $w.WriteElementString('command', 'noun', $ns.command, $command.Noun)
    Write-Paras 'maml' 'description' @(Get-FirstSentence $description[0])
    $w.WriteEndElement()
    Write-Paras 'maml' 'description' $description

    # Syntax: one item per parameter set; positional parameters first, then mandatory, then the rest.
    $w.WriteStartElement('command', 'syntax', $ns.command)
    foreach ($set in $command.ParameterSets) {
        $w.WriteStartElement('command', 'syntaxItem', $ns.command)
        $w.WriteElementString('maml', 'name', $ns.maml, $command.Name)
        $ordered = $set.Parameters | Where-Object { $_.Name -notin $skip } |
            Sort-Object { if ($_.Position -ge 0) { 0 } elseif ($_.IsMandatory) { 1 } elseif ($shouldProcessText.ContainsKey($_.Name)) { 3 } else { 2 } }, { $_.Position }
        foreach ($p in $ordered) {
            $d = $parameterDoc[$p.Name]
            Write-Parameter $p $d.Text $d.Default $d.Globbing $true
        }
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    # Parameters: each once, described as in the first parameter set that has it.
    $w.WriteStartElement('command', 'parameters', $ns.command)
    $seen = @{}
    foreach ($set in $command.ParameterSets) {
        foreach ($p in $set.Parameters | Where-Object { $_.Name -notin $skip }) {
            if ($seen.ContainsKey($p.Name)) { continue }
            $seen[$p.Name] = $true
            $d = $parameterDoc[$p.Name]
            Write-Parameter $p $d.Text $d.Default $d.Globbing $false
        }
    }
    $w.WriteEndElement()

    # Input: the types of parameters that take pipeline input; output: [OutputType].
    $w.WriteStartElement('command', 'inputTypes', $ns.command)
    $inputs = @($command.Parameters.Values | Where-Object { $_.Name -notin $skip } | ForEach-Object {
            $byValue = $_.Attributes.Where({ $_ -is [System.Management.Automation.ParameterAttribute] -and $_.ValueFromPipeline })
            $byName = $_.Attributes.Where({ $_ -is [System.Management.Automation.ParameterAttribute] -and $_.ValueFromPipelineByPropertyName })
            if ($byValue) { "$(Get-TypeName $_.ParameterType) (binds -$($_.Name) by value)" }
            elseif ($byName) { "Objects with the property $($_.Name) (binds -$($_.Name) by property name)" }
        })
    if ($hidden -contains 'PipelineInput') { $inputs += 'Replication.ReplicationCluster (a piped cluster is the cluster to act on)' }
    foreach ($input in $(if ($inputs) { $inputs } else { @('None') })) {
        $w.WriteStartElement('command', 'inputType', $ns.command)
        $w.WriteStartElement('dev', 'type', $ns.dev); $w.WriteElementString('maml', 'name', $ns.maml, $input); $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()
    $w.WriteStartElement('command', 'returnValues', $ns.command)
    foreach ($output in $command.OutputType) {
        $w.WriteStartElement('command', 'returnValue', $ns.command)
        $outputName = if ($output.Type -eq [void]) { 'None' } else { $output.Name }
        $w.WriteStartElement('dev', 'type', $ns.dev); $w.WriteElementString('maml', 'name', $ns.maml, $outputName); $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'examples', $ns.command)
    $number = 0
    foreach ($example in $examples) {
        $number++
        $code = $example['code']
        if (-not $code) { $problems.Add("$($command.Name): example $number has no <code>"); continue }
        $remarkNode = $example.Clone()
        [void]$remarkNode.RemoveChild($remarkNode['code'])
        $remarks = @(ConvertTo-PlainText $remarkNode)
        if (-not $remarks) { $problems.Add("$($command.Name): example $number has no remark") }
        $w.WriteStartElement('command', 'example', $ns.command)
        $w.WriteElementString('maml', 'title', $ns.maml, "-------------------------- Example $number --------------------------")
        $w.WriteElementString('dev', 'code', $ns.dev, (Get-CodeText $code))
        Write-Paras 'dev' 'remarks' ($remarks + '')   # the empty paragraph separates examples
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    # Related links: the about topic, the cmdlets of the same noun, and the class's <seealso cref="..."/> cmdlets.
    $related = [System.Collections.Generic.List[string]]::new()
    $related.Add('about_Replication')
    foreach ($other in $module.ExportedCmdlets.Values | Where-Object { $_.Noun -eq $command.Noun -and $_.Name -ne $command.Name } | Sort-Object Name) { $related.Add($other.Name) }
    foreach ($see in @(if ($classDoc) { $classDoc.SelectNodes('seealso') })) {
        $target = $cmdletByType[($see.GetAttribute('cref') -replace '^T:', '')]
        if (-not $target) { $problems.Add("$($command.Name): <seealso cref=""$($see.GetAttribute('cref'))""/> names no exported cmdlet"); continue }
        if (-not $related.Contains($target)) { $related.Add($target) }
    }
    if ($related.Count -lt 2) { $problems.Add("$($command.Name): no related cmdlet (same noun or <seealso cref=""...""/>)") }
    $w.WriteStartElement('maml', 'relatedLinks', $ns.maml)
    foreach ($link in $related) {
        $w.WriteStartElement('maml', 'navigationLink', $ns.maml)
        $w.WriteElementString('maml', 'linkText', $ns.maml, $link)
        $w.WriteElementString('maml', 'uri', $ns.maml, '')
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteEndElement() # command:command
}

$w.WriteEndElement()
$w.WriteEndDocument()
$w.Flush()

if ($problems.Count) { throw "Help is incomplete:`n  $($problems -join "`n  ")" }
$fileName = "$dllName-Help.xml"
$dllFolder = Split-Path ($module.ImplementingAssembly.Location)
foreach ($folder in @(Join-Path $module.ModuleBase $Culture; Join-Path $dllFolder $Culture) | Select-Object -Unique) {
    New-Item -ItemType Directory -Force $folder | Out-Null
    [IO.File]::WriteAllBytes((Join-Path $folder $fileName), $stream.ToArray())
    Write-Host "Wrote $(Join-Path $folder $fileName) ($($module.ExportedCmdlets.Count) cmdlets)"
    # The about_ topics (module/<culture>/about_*.help.txt) go beside it: Get-Help about_Replication.
    foreach ($about in Get-ChildItem (Join-Path $PSScriptRoot $Culture) -Filter 'about_*.help.txt' -ErrorAction SilentlyContinue) {
        Copy-Item $about.FullName (Join-Path $folder $about.Name) -Force
        Write-Host "Copied $($about.Name) to $folder"
    }
}
