namespace Replication.Engine;

/// <summary>A fault drill was asked for something it cannot do (a fault the target does not support, too few nodes, a bound out of range). Nothing ran.</summary>
public sealed class InvalidDrillOptionsException(string message) : ReplicationException(message)
{
    public const string Id = "InvalidDrillOptions";
    public override string ErrorId => Id;
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidArgument;
}
