namespace Replication.Engine;

/// <summary>An endpoint answered but the handshake failed: the two sides do not share the cluster secret.
/// The message never contains the secret.</summary>
public sealed class AuthenticationFailedException(string message) : ReplicationException(message)
{
    public override string ErrorId => "AuthenticationFailed";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Unauthorized;
}
