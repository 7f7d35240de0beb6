namespace Replication.Engine.Verification;

/// <summary>What a client asked for: the operation's kind, its key, and for a put or compare-and-set the value (and the expected version).</summary>
public sealed record KvInput(KvOpKind Kind, string Key, string? Value = null, long ExpectedVersion = 0)
{
    public override string ToString() => Kind switch
    {
        KvOpKind.Put => $"put({Key}={Value})",
        KvOpKind.Get => $"get({Key})",
        KvOpKind.Delete => $"delete({Key})",
        _ => $"cas({Key}: v{ExpectedVersion} -> {Value})",
    };
}
