/// <summary>
/// A system under load, seen from the load generator: the same load shape drives every implementation.
/// A client is one connection doing one request at a time (each load client owns one).
/// </summary>
internal interface IKvTarget : IAsyncDisposable
{
    /// <summary>Waits (bounded) until the system serves with all its replicas, picks the server clients dial, and says which.</summary>
    Task<string> PrepareAsync(bool spread, CancellationToken cancellationToken);

    /// <summary>Opens client number <paramref name="index"/>: connected, authenticated and one request answered.</summary>
    Task<IKvClient> ConnectAsync(int index, CancellationToken cancellationToken);

    /// <summary>Who leads now (to see whether leadership moved during the round).</summary>
    Task<string> LeadersAsync(CancellationToken cancellationToken);
}

/// <summary>One client connection. Every method throws when the request failed.</summary>
internal interface IKvClient : IAsyncDisposable
{
    /// <summary>A put acknowledged once a majority has it durably (fsynced).</summary>
    Task PutAsync(string key, string value, CancellationToken cancellationToken);

    /// <summary>A linearizable read; false when the key is absent.</summary>
    Task<bool> GetAsync(string key, CancellationToken cancellationToken);

    /// <summary>Puts a batch as one request (what a pipeline import sends); returns how many keys were acknowledged.</summary>
    Task<int> PutBatchAsync(IReadOnlyList<KeyValuePair<string, string>> batch, CancellationToken cancellationToken);
}
