namespace Replication.Engine;

/// <summary>Stored data failed a check (checksum, schema); the node refuses to serve it.</summary>
public sealed class StorageCorruptException(string message) : ReplicationException(message)
{
    public override string ErrorId => "StorageCorrupt";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Corrupt;
}
