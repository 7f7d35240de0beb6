# New-ReplicationCertificate as an operator uses it: a CA, node and client folders, the files and
# their permissions, what the certificates say (roles, names, chain to the CA only), refusal to
# overwrite, CA rotation into a bundle, and the ErrorIds of bad requests. Data under $TestDrive.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module $Manifest -Force

    function Read-Certificate([string] $Path) {
        [System.Security.Cryptography.X509Certificates.X509Certificate2]::CreateFromPem((Get-Content -Raw $Path))
    }

    function Test-Chain($Certificate, [string] $CaFile) {
        $authorities = [System.Security.Cryptography.X509Certificates.X509Certificate2Collection]::new()
        $authorities.ImportFromPemFile($CaFile)
        $chain = [System.Security.Cryptography.X509Certificates.X509Chain]::new()
        $chain.ChainPolicy.TrustMode = 'CustomRootTrust'
        $chain.ChainPolicy.RevocationMode = 'NoCheck'
        $chain.ChainPolicy.CustomTrustStore.AddRange($authorities)
        try { $chain.Build($Certificate) } finally { $chain.Dispose() }
    }

    function Get-Usage($Certificate) {
        @($Certificate.Extensions | Where-Object { $_ -is [System.Security.Cryptography.X509Certificates.X509EnhancedKeyUsageExtension] } |
            ForEach-Object { $_.EnhancedKeyUsages } | ForEach-Object Value | Sort-Object)
    }
}

Describe 'New-ReplicationCertificate' -Tag Unit {
    It 'has the parameter sets CertificateAuthority, Node and Client and the parameters <Expected>' -ForEach @(
        @{ Expected = 'CaPath,CertificateAuthority,Client,Confirm,Force,HostName,IPAddress,Name,Node,Path,Rotate,ValidDays,WhatIf' }
    ) {
        $command = Get-Command New-ReplicationCertificate
        $command.ParameterSets.Name | Sort-Object | Should -Be @('CertificateAuthority', 'Client', 'Node')
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters
        ($command.Parameters.Keys | Where-Object { $_ -notin $common } | Sort-Object) -join ',' | Should -Be $Expected
    }
}

Describe 'New-ReplicationCertificate' {
    It 'creates a CA, a node and a client folder as FileInfo objects, with owner-only keys' {
        $ca = Join-Path $TestDrive 'ca'
        $caFiles = @(New-ReplicationCertificate -CertificateAuthority -Path $ca)
        $caFiles | ForEach-Object { $_ | Should -BeOfType [System.IO.FileInfo] }
        $caFiles.Name | Should -Be @('ca.crt', 'ca.key')

        $node = Join-Path $TestDrive 'node1'
        $nodeFiles = @(New-ReplicationCertificate -Node -Path $node -CaPath $ca -IPAddress 10.0.0.11, 127.0.0.1 -HostName db1.example.internal -ValidDays 30)
        $nodeFiles.Name | Should -Be @('node.crt', 'node.key', 'ca.crt')
        Join-Path $node 'ca.key' | Should -Not -Exist

        $client = Join-Path $TestDrive 'admin'
        $clientFiles = @(New-ReplicationCertificate -Client -Path $client -CaPath $ca -Name admin)
        $clientFiles.Name | Should -Be @('client.crt', 'client.key', 'ca.crt')

        if (-not $IsWindows) {
            foreach ($key in (Join-Path $ca 'ca.key'), (Join-Path $node 'node.key'), (Join-Path $client 'client.key')) {
                (Get-Item $key).UnixFileMode | Should -Be ([System.IO.UnixFileMode]'UserRead, UserWrite') -Because $key
            }
        }

        $nodeCertificate = Read-Certificate (Join-Path $node 'node.crt')
        $nodeCertificate.GetNameInfo('SimpleName', $false) | Should -Be 'node'
        Get-Usage $nodeCertificate | Should -Be @('1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2')
        $nodeCertificate.MatchesHostname('10.0.0.11') | Should -BeTrue
        $nodeCertificate.MatchesHostname('db1.example.internal') | Should -BeTrue
        $nodeCertificate.MatchesHostname('10.0.0.12') | Should -BeFalse
        ($nodeCertificate.NotAfter - $nodeCertificate.NotBefore).TotalDays | Should -BeLessThan 31
        Test-Chain $nodeCertificate (Join-Path $ca 'ca.crt') | Should -BeTrue

        $clientCertificate = Read-Certificate (Join-Path $client 'client.crt')
        $clientCertificate.GetNameInfo('SimpleName', $false) | Should -Be 'admin'
        Get-Usage $clientCertificate | Should -Be @('1.3.6.1.5.5.7.3.2')
        Test-Chain $clientCertificate (Join-Path $ca 'ca.crt') | Should -BeTrue

        # Under another CA the certificates do not validate: trust is the cluster CA only.
        $other = Join-Path $TestDrive 'other-ca'
        New-ReplicationCertificate -CertificateAuthority -Path $other | Out-Null
        Test-Chain $nodeCertificate (Join-Path $other 'ca.crt') | Should -BeFalse
    }

    It 'makes a complete loopback folder with the defaults' {
        $folder = Join-Path $TestDrive 'loopback'
        New-ReplicationCertificate -CertificateAuthority -Path $folder | Out-Null
        New-ReplicationCertificate -Node -Path $folder | Out-Null
        New-ReplicationCertificate -Client -Path $folder | Out-Null
        @(Get-ChildItem $folder).Name | Sort-Object | Should -Be @('ca.crt', 'ca.key', 'client.crt', 'client.key', 'node.crt', 'node.key')
        $node = Read-Certificate (Join-Path $folder 'node.crt')
        foreach ($name in 'localhost', '127.0.0.1', '::1') { $node.MatchesHostname($name) | Should -BeTrue -Because $name }
        (Read-Certificate (Join-Path $folder 'client.crt')).GetNameInfo('SimpleName', $false) | Should -Be 'client'
    }

    It 'refuses to overwrite without -Force (CertificateFileExists) and replaces with it' {
        $folder = Join-Path $TestDrive 'overwrite'
        New-ReplicationCertificate -CertificateAuthority -Path $folder | Out-Null
        New-ReplicationCertificate -Node -Path $folder | Out-Null
        $before = Get-Content -Raw (Join-Path $folder 'node.crt')
        New-ReplicationCertificate -Node -Path $folder -ErrorAction SilentlyContinue -ErrorVariable refused | Should -BeNullOrEmpty
        $refused[0].FullyQualifiedErrorId | Should -Be 'CertificateFileExists,Replication.PowerShell.Commands.NewReplicationCertificateCommand'
        $refused[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        $refused[0].TargetObject | Should -Be (Join-Path $folder 'node.crt')
        Get-Content -Raw (Join-Path $folder 'node.crt') | Should -Be $before
        { New-ReplicationCertificate -CertificateAuthority -Path $folder -ErrorAction Stop } | Should -Throw -ErrorId 'CertificateFileExists,*'

        @(New-ReplicationCertificate -Node -Path $folder -Force).Count | Should -Be 2
        Get-Content -Raw (Join-Path $folder 'node.crt') | Should -Not -Be $before
    }

    It 'writes nothing with -WhatIf' {
        $folder = Join-Path $TestDrive 'whatif'
        New-ReplicationCertificate -CertificateAuthority -Path $folder -WhatIf | Should -BeNullOrEmpty
        $folder | Should -Not -Exist
    }

    It 'rotates the CA into a bundle that trusts certificates of the old and the new CA' {
        $ca = Join-Path $TestDrive 'rotating-ca'
        $node = Join-Path $TestDrive 'rotating-node'
        New-ReplicationCertificate -CertificateAuthority -Path $ca | Out-Null
        New-ReplicationCertificate -Node -Path $node -CaPath $ca | Out-Null
        $old = Read-Certificate (Join-Path $node 'node.crt')

        @(New-ReplicationCertificate -CertificateAuthority -Path $ca -Rotate).Name | Should -Be @('ca.crt', 'ca.key')
        $bundle = [System.Security.Cryptography.X509Certificates.X509Certificate2Collection]::new()
        $bundle.ImportFromPemFile((Join-Path $ca 'ca.crt'))
        $bundle.Count | Should -Be 2

        # The node folder must trust the new CA before it gets a certificate from it.
        New-ReplicationCertificate -Node -Path $node -CaPath $ca -Force -ErrorAction SilentlyContinue -ErrorVariable untrusted | Out-Null
        $untrusted[0].FullyQualifiedErrorId | Should -BeLike 'CertificateInvalid,*'
        Copy-Item (Join-Path $ca 'ca.crt') (Join-Path $node 'ca.crt') -Force
        New-ReplicationCertificate -Node -Path $node -CaPath $ca -Force | Out-Null
        $new = Read-Certificate (Join-Path $node 'node.crt')
        $new.Issuer | Should -Not -Be $old.Issuer
        Test-Chain $old (Join-Path $node 'ca.crt') | Should -BeTrue
        Test-Chain $new (Join-Path $node 'ca.crt') | Should -BeTrue
    }

    It 'reports <ErrorId> for <Case>' -ForEach @(
        @{ Case = 'a node certificate without a CA'; ErrorId = 'CertificateNotFound'; Arguments = @{ Node = $true; CaPath = 'no-such-ca' } }
        @{ Case = 'a host name that is not a DNS name'; ErrorId = 'InvalidCertificateRequest'; Arguments = @{ Node = $true; HostName = 'not a host' } }
        @{ Case = '-Rotate without a CA'; ErrorId = 'CertificateNotFound'; Arguments = @{ CertificateAuthority = $true; Rotate = $true } }
    ) {
        $folder = Join-Path $TestDrive ('bad-' + [guid]::NewGuid().ToString('N').Substring(0, 6))
        if ($Arguments.CaPath) { $Arguments.CaPath = Join-Path $TestDrive $Arguments.CaPath }
        New-ReplicationCertificate -Path $folder @Arguments -ErrorAction SilentlyContinue -ErrorVariable failed | Should -BeNullOrEmpty
        $failed[0].FullyQualifiedErrorId | Should -Be "$ErrorId,Replication.PowerShell.Commands.NewReplicationCertificateCommand"
        $folder | Should -Not -Exist
    }
}
