using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Replication.Engine.Security;

namespace Replication.Engine.Transport;

/// <summary>
/// The TLS layer under the frames (docs/wire-protocol.md, "TLS"): TLS 1.3 only, mutual, every
/// certificate checked against the cluster CA bundle only (<see cref="CertificateChecks"/>), no
/// session resumption (so every connection is a full handshake with the certificates in force at
/// that moment, which is what makes rotation take effect per connection). The dialer is the TLS
/// client and requires a node certificate naming the host it dialled; the listener is the TLS
/// server, requires a certificate, and reports the dialer's role so that the Hello can be checked
/// against it. Stateless and thread-safe.
/// </summary>
internal static class TlsChannel
{
    /// <summary>The first byte of every TLS record that opens a connection (a handshake record, RFC 8446 §5.1).</summary>
    public const byte HandshakeRecord = 0x16;

    /// <summary>
    /// The TLS client's side on a connected stream. Returns the encrypted stream (owning
    /// <paramref name="network"/>) once both sides' certificates are accepted by this side; with TLS 1.3
    /// the listener's verdict on OUR certificate arrives with its first answer (see <see cref="Handshake.DialSecuredAsync"/>).
    /// </summary>
    /// <exception cref="ProtocolException"><see cref="ProtocolErrorReason.CertificateRejected"/>: the listener's certificate
    /// is not acceptable (reason in the message); <see cref="ProtocolErrorReason.TlsHandshakeFailed"/>: the handshake failed otherwise.</exception>
    /// <exception cref="IOException">The connection failed or was closed during the handshake.</exception>
    public static async Task<SslStream> AuthenticateAsDialerAsync(Stream network, string targetHost, TlsIdentity identity, CancellationToken ct)
    {
        var ssl = new SslStream(network, leaveInnerStreamOpen: false);
        string? refusal = null;
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = targetHost,
            EnabledSslProtocols = SslProtocols.Tls13,
            ClientCertificateContext = identity.Context,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            CertificateChainPolicy = CertificateChecks.ChainPolicy(identity.Authorities),
            AllowTlsResume = false,
            RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
            {
                refusal = CertificateChecks.CheckPeer(certificate, chain, errors, out var role, out string _);
                if (refusal is null && role != CertificateRole.Node)
                    refusal = $"it presented a {role.ToString()!.ToLowerInvariant()} certificate, and only a node's may listen";
                return refusal is null;
            },
        };
        try
        {
            await ssl.AuthenticateAsClientAsync(options, ct).ConfigureAwait(false);
            return ssl;
        }
        catch (AuthenticationException e)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw refusal is not null
                ? new ProtocolException(ProtocolErrorReason.CertificateRejected, $"The listener at {targetHost} is refused: {refusal}.")
                : new ProtocolException(ProtocolErrorReason.TlsHandshakeFailed, $"The TLS handshake with {targetHost} failed: {Describe(e)}");
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// The TLS server's side on an accepted connection whose first byte is a TLS handshake record.
    /// Returns the encrypted stream (owning <paramref name="network"/>) and the dialer's role and subject.
    /// </summary>
    /// <exception cref="ProtocolException"><see cref="ProtocolErrorReason.CertificateRejected"/>: no certificate, or one not
    /// acceptable; <see cref="ProtocolErrorReason.TlsHandshakeFailed"/>: any other handshake failure.</exception>
    /// <exception cref="IOException">The connection failed or was closed during the handshake.</exception>
    public static async Task<(SslStream Stream, CertificateRole Role, string Subject)> AuthenticateAsListenerAsync(Stream network, TlsIdentity identity, CancellationToken ct)
    {
        var ssl = new SslStream(network, leaveInnerStreamOpen: false);
        string? refusal = null;
        CertificateRole? peerRole = null;
        string peerSubject = "";
        var options = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = identity.Context,
            ClientCertificateRequired = true,
            EnabledSslProtocols = SslProtocols.Tls13,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            CertificateChainPolicy = CertificateChecks.ChainPolicy(identity.Authorities),
            AllowTlsResume = false,
            RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
            {
                refusal = CertificateChecks.CheckPeer(certificate, chain, errors, out peerRole, out peerSubject);
                return refusal is null;
            },
        };
        try
        {
            await ssl.AuthenticateAsServerAsync(options, ct).ConfigureAwait(false);
            return (ssl, peerRole!.Value, peerSubject);
        }
        catch (AuthenticationException e)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw refusal is not null
                ? new ProtocolException(ProtocolErrorReason.CertificateRejected, $"The dialer's certificate is refused: {refusal}.")
                : new ProtocolException(ProtocolErrorReason.TlsHandshakeFailed, $"The TLS handshake failed: {Describe(e)}");
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// The first byte the dialer sent, without consuming it (so the TLS or frame layer still reads
    /// it); -1 when the connection closed first. Lets a listener say "this peer speaks the other
    /// mode" instead of a confusing frame or TLS error. Blocks the calling thread (a listener's handshake runs on a thread
    /// of its own, over a socket kept blocking: <see cref="BlockingStream"/>).
    /// </summary>
    public static int PeekFirstByte(Socket socket)
    {
        var one = new byte[1];
        int got = socket.Receive(one, SocketFlags.Peek);
        return got == 0 ? -1 : one[0];
    }

    private static string Describe(Exception e) => e.InnerException is { } inner ? $"{e.Message} ({inner.Message})" : e.Message;
}
