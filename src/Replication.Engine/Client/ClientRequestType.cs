namespace Replication.Engine.Client;

/// <summary>
/// Kind of a client request (the byte after the correlation id; docs/wire-protocol.md, "Client
/// protocol"). A response echoes its request's type. On the wire: explicit, append-only values;
/// anything else is malformed.
/// </summary>
public enum ClientRequestType : byte
{
    Write = 1,
    Get = 2,
    Scan = 3,
    ScanNext = 4,
    ScanClose = 5,
    Status = 6,
    WaitForLeaders = 7,
    StopNode = 8,
    StartNode = 9,
}
