using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Replication.Engine.Security;

/// <summary>
/// The rules every certificate of a cluster is held to, for our own (when loaded) and a peer's
/// (during the TLS handshake): it chains to a CA of ca.crt and to nothing else (custom root trust:
/// the OS store is never consulted), it is valid now, and its Extended Key Usage gives it a role.
/// Revocation is not checked (there is no CRL or OCSP responder for a cluster CA); a compromised
/// certificate is retired by rotating the CA (docs/wire-protocol.md, "TLS"). Stateless, thread-safe.
/// </summary>
internal static class CertificateChecks
{
    /// <summary>TLS Web Server Authentication (RFC 5280).</summary>
    public const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";

    /// <summary>TLS Web Client Authentication (RFC 5280).</summary>
    public const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    /// <summary>
    /// A fresh chain policy that trusts exactly <paramref name="authorities"/>. Fresh per use because
    /// SslStream adds the peer's intermediates to the policy it is given.
    /// </summary>
    public static X509ChainPolicy ChainPolicy(X509Certificate2Collection authorities)
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            VerificationFlags = X509VerificationFlags.NoFlag,
            DisableCertificateDownloads = true,
        };
        policy.CustomTrustStore.AddRange(authorities);
        return policy;
    }

    /// <summary>The role the certificate's Extended Key Usage grants, or null when it grants none (no EKU, or no clientAuth).</summary>
    public static CertificateRole? RoleOf(X509Certificate2 certificate)
    {
        var eku = certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().FirstOrDefault();
        if (eku is null) return null;
        bool client = false, server = false;
        foreach (var oid in eku.EnhancedKeyUsages)
        {
            if (oid.Value == ClientAuthOid) client = true;
            else if (oid.Value == ServerAuthOid) server = true;
        }
        if (!client) return null;
        return server ? CertificateRole.Node : CertificateRole.Client;
    }

    /// <summary>
    /// Validates <paramref name="certificate"/> against <paramref name="authorities"/> now (chain and
    /// validity period; <paramref name="intermediates"/> may complete the chain). Returns null when
    /// valid, otherwise why not, in words for a log or an error message.
    /// </summary>
    public static string? CheckChain(X509Certificate2 certificate, X509Certificate2Collection authorities, X509Certificate2Collection? intermediates = null)
    {
        using var chain = new X509Chain { ChainPolicy = ChainPolicy(authorities) };
        if (intermediates is not null) chain.ChainPolicy.ExtraStore.AddRange(intermediates);
        return chain.Build(certificate) ? null : DescribeChainFailure(certificate, chain);
    }

    /// <summary>
    /// The decision on a peer's certificate during a TLS handshake, from what SslStream computed with
    /// <see cref="ChainPolicy"/> (chain, validity, and on the dialer's side the host name). Returns
    /// null and the peer's role when acceptable; otherwise the reason.
    /// </summary>
    public static string? CheckPeer(X509Certificate? presented, X509Chain? chain, SslPolicyErrors errors, out CertificateRole? role, out string subject)
    {
        role = null;
        subject = presented?.Subject ?? "(none)";
        if (presented is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
            return "it presented no certificate";
        var certificate = presented as X509Certificate2 ?? new X509Certificate2(presented);
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
            return chain is null ? $"its certificate {Describe(certificate)} does not chain to a CA in {CertificateFileNames.Authority}" : DescribeChainFailure(certificate, chain);
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
            return $"its certificate {Describe(certificate)} does not name the host dialled (its names: {string.Join(", ", SubjectAlternativeNames(certificate))})";
        role = RoleOf(certificate);
        if (role is null)
            return $"its certificate {Describe(certificate)} has no Extended Key Usage for TLS client authentication, so it is neither a node's nor a client's";
        return null;
    }

    /// <summary>The DNS names and IP addresses of the certificate's Subject Alternative Name extension.</summary>
    public static IEnumerable<string> SubjectAlternativeNames(X509Certificate2 certificate)
    {
        foreach (var san in certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>())
        {
            foreach (var name in san.EnumerateDnsNames()) yield return name;
            foreach (var ip in san.EnumerateIPAddresses()) yield return ip.ToString();
        }
    }

    /// <summary>Subject, validity and thumbprint: enough to tell certificates apart in a log. Never key material.</summary>
    public static string Describe(X509Certificate2 certificate) =>
        $"'{certificate.Subject}' (valid {certificate.NotBefore.ToUniversalTime():yyyy-MM-dd HH:mm}Z to {certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm}Z, thumbprint {certificate.Thumbprint[..16]}…)";

    private static string DescribeChainFailure(X509Certificate2 certificate, X509Chain chain)
    {
        var statuses = chain.ChainStatus.Select(s => s.Status).Concat(chain.ChainElements.SelectMany(e => e.ChainElementStatus).Select(s => s.Status))
            .Where(s => s != X509ChainStatusFlags.NoError).Distinct().ToList();
        var reasons = new List<string>();
        if (statuses.Contains(X509ChainStatusFlags.NotTimeValid))
            reasons.Add(DateTime.Now > certificate.NotAfter ? "it has expired" : "it is not yet valid, or its CA has expired");
        if (statuses.Contains(X509ChainStatusFlags.UntrustedRoot) || statuses.Contains(X509ChainStatusFlags.PartialChain))
            reasons.Add($"it is not signed by a CA in {CertificateFileNames.Authority}");
        if (statuses.Contains(X509ChainStatusFlags.NotSignatureValid))
            reasons.Add("a signature in its chain does not verify");
        if (statuses.Contains(X509ChainStatusFlags.NotValidForUsage))
            reasons.Add("its Extended Key Usage does not allow this use (a client certificate where a node's is needed)");
        var other = statuses.Where(s => s is not (X509ChainStatusFlags.NotTimeValid or X509ChainStatusFlags.UntrustedRoot
            or X509ChainStatusFlags.PartialChain or X509ChainStatusFlags.NotSignatureValid or X509ChainStatusFlags.NotValidForUsage)).ToList();
        if (other.Count > 0) reasons.Add($"chain status {string.Join(", ", other)}");
        if (reasons.Count == 0) reasons.Add("its chain does not validate");
        return $"certificate {Describe(certificate)} is refused: {string.Join("; ", reasons)}";
    }
}
