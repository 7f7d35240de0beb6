using System.Net;
using System.Net.Sockets;

namespace Replication.Engine.Tests.Transport;

/// <summary>
/// A TCP proxy on 127.0.0.1 that forwards every connection to <c>target</c> and records every byte
/// that passes, both directions: what an eavesdropper on the path would see.
/// </summary>
internal sealed class RecordingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly MemoryStream _recorded = new();
    private readonly List<Task> _pumps = new();
    private readonly List<Socket> _sockets = new();
    private readonly Task _accept;

    public RecordingProxy(IPEndPoint target)
    {
        _target = target;
        _listener.Start();
        EndPoint = (IPEndPoint)_listener.LocalEndpoint;
        _accept = Task.Run(AcceptLoopAsync);
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Bytes recorded so far, both directions.</summary>
    public long RecordedBytes
    {
        get { lock (_recorded) return _recorded.Length; }
    }

    /// <summary>True if <paramref name="needle"/> occurs anywhere in what was recorded.</summary>
    public bool Saw(byte[] needle)
    {
        byte[] all;
        lock (_recorded) all = _recorded.ToArray();
        return all.AsSpan().IndexOf(needle) >= 0;
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket inbound;
            try { inbound = await _listener.AcceptSocketAsync(_stop.Token); }
            catch (Exception) { return; }
            var outbound = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try { await outbound.ConnectAsync(_target, _stop.Token); }
            catch (Exception)
            {
                inbound.Dispose();
                outbound.Dispose();
                continue;
            }
            lock (_pumps)
            {
                _sockets.Add(inbound);
                _sockets.Add(outbound);
                _pumps.Add(PumpAsync(inbound, outbound));
                _pumps.Add(PumpAsync(outbound, inbound));
            }
        }
    }

    private async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[16384];
        try
        {
            while (true)
            {
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0) break;
                lock (_recorded) _recorded.Write(buffer, 0, n);
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception)
        {
            // Either side closed or the proxy stops.
        }
        try { to.Shutdown(SocketShutdown.Send); } catch (Exception) { }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accept;
        Task[] pumps;
        lock (_pumps)
        {
            foreach (var socket in _sockets) socket.Dispose();
            pumps = _pumps.ToArray();
        }
        await Task.WhenAll(pumps);
        _stop.Dispose();
    }
}
