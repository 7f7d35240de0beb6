using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Security.Cryptography.X509Certificates;

namespace Replication.Engine.Security;

/// <summary>
/// Where a node's or client's TLS credentials come from, and how they are rotated without downtime.
/// <para>
/// Folder-backed: every new connection (dialled or accepted) asks for <see cref="Current"/>, which
/// compares a SHA-256 of ca.crt and the role's certificate and key with that of the files it loaded
/// (three reads of a few KB: cheap next to a TLS handshake, and unlike a size and modification time
/// not fooled by a copy that keeps the old time stamp). When they differ, it loads and checks
/// the files again and, if they pass, uses them from this connection on; connections already open
/// keep the credentials they started with. If the new files do not pass (for example node.crt was
/// replaced and node.key not yet), it keeps the previous credentials, logs why once, and tries again
/// when the files change again. So replacing files one by one, in any order, never takes a node down.
/// </para>
/// <para>
/// Fixed (certificates given as objects, e.g. from a certificate store): never reloads.
/// </para>
/// Thread-safe.
/// </summary>
internal sealed class CertificateSource
{
    private readonly object _gate = new();
    private readonly string? _folder;
    private readonly string[] _files;
    private TlsIdentity _current;            // guarded by _gate
    private string _loaded;                  // stamp of _current's files; guarded by _gate
    private string? _rejected;               // stamp of files that failed to load; guarded by _gate
    private bool _warnedExpired;             // logged once that _current has expired; guarded by _gate

    private CertificateSource(string? folder, CertificateRole role, TlsIdentity identity, string[] files, string stamp)
    {
        _folder = folder;
        Role = role;
        _current = identity;
        _files = files;
        _loaded = stamp;
    }

    /// <summary>The role whose files this source reads.</summary>
    public CertificateRole Role { get; }

    /// <summary>The folder the credentials come from, or null for fixed certificates.</summary>
    public string? Folder => _folder;

    /// <summary>Loads and checks the role's files in <paramref name="folder"/> now (see <see cref="TlsIdentity.Load"/> for the errors).</summary>
    public static CertificateSource FromFolder(string folder, CertificateRole role)
    {
        folder = Path.GetFullPath(folder);
        string[] files =
        [
            Path.Combine(folder, CertificateFileNames.Authority),
            Path.Combine(folder, CertificateFileNames.CertificateFor(role)),
            Path.Combine(folder, CertificateFileNames.KeyFor(role)),
        ];
        // Stamp before loading: a change during the load is then seen by the next check.
        string stamp = Stamp(files);
        return new CertificateSource(folder, role, TlsIdentity.Load(folder, role), files, stamp);
    }

    /// <summary>Checks and wraps certificates given as objects; they are never reloaded.</summary>
    public static CertificateSource Fixed(X509Certificate2 certificate, X509Certificate2Collection authorities, CertificateRole role) =>
        new(null, role, TlsIdentity.FromCertificate(certificate, new X509Certificate2Collection(), authorities, role, $"certificate '{certificate.Subject}'"), [], "");

    /// <summary>
    /// The credentials for a new connection: reloaded first when the files changed and the new files
    /// pass every check, otherwise the ones in use. Never throws for bad files (it logs them).
    /// </summary>
    public TlsIdentity Current(Action<string>? log)
    {
        lock (_gate)
        {
            if (!_warnedExpired && _current.Certificate.NotAfter.ToUniversalTime() <= DateTime.UtcNow)
            {
                _warnedExpired = true;
                Log(log, $"this side's certificate {CertificateChecks.Describe(_current.Certificate)} has expired: peers refuse it; replace it{(_folder is null ? "" : $" in {_folder}")}");
            }
            if (_folder is null) return _current;
            string stamp = Stamp(_files);
            if (stamp == _loaded || stamp == _rejected) return _current;
            try
            {
                var fresh = TlsIdentity.Load(_folder, Role);
                bool same = fresh.Certificate.Thumbprint == _current.Certificate.Thumbprint && SameAuthorities(fresh, _current);
                _current = fresh;
                _loaded = stamp;
                _rejected = null;
                _warnedExpired = false;
                if (!same)
                    Log(log, $"certificates reloaded from {_folder}: now presenting {CertificateChecks.Describe(fresh.Certificate)}, trusting {fresh.Authorities.Count} CA certificate(s); open connections keep their old ones");
            }
            catch (ReplicationException e)
            {
                _rejected = stamp;
                Log(log, $"certificate files in {_folder} changed but cannot be used, so the previous ones stay in use: {e.Message}");
            }
            return _current;
        }
    }

    private static bool SameAuthorities(TlsIdentity a, TlsIdentity b) =>
        a.Authorities.Select(c => c.Thumbprint).Order().SequenceEqual(b.Authorities.Select(c => c.Thumbprint).Order());

    private static void Log(Action<string>? log, string message)
    {
        if (log is null) return;
        try { log(message); }
        catch (Exception) { /* a failing logger must not fail a connection */ }
    }

    /// <summary>A SHA-256 over each file's length and content ("missing" or "unreadable" for a file that cannot be read).</summary>
    private static string Stamp(string[] files)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> length = stackalloc byte[8];
        foreach (var file in files)
        {
            byte[] content;
            try { content = File.ReadAllBytes(file); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { content = Encoding.UTF8.GetBytes(e is FileNotFoundException ? "\0missing" : "\0unreadable"); }
            BinaryPrimitives.WriteInt64LittleEndian(length, content.LongLength);
            hash.AppendData(length);
            hash.AppendData(content);
        }
        return Convert.ToHexString(hash.GetHashAndReset());
    }
}
