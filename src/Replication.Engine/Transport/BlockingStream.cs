namespace Replication.Engine.Transport;

/// <summary>
/// A socket's stream whose asynchronous reads and writes run synchronously on the calling thread while
/// <see cref="Blocking"/> is true, so that code written against async streams (the handshakes, TLS) can run on a
/// thread of its own over a socket that never does an asynchronous operation. That keeps the socket in blocking
/// mode and out of the runtime's socket event loop: a thread blocked in a read is woken by the kernel alone. A socket
/// that has done one asynchronous operation stays non-blocking for good, and then every frame received, and every
/// acknowledgement of a frame sent, became an event on the runtime's socket thread and a thread-pool work item whose
/// worker spins before it sleeps: most of an idle node's CPU (bench finding, issue 11). Once <see cref="Blocking"/>
/// is false, asynchronous calls pass through (a client's connection, served asynchronously after its handshake).
/// Cancellation tokens are checked only before a blocking call: whoever needs a deadline disposes the socket then.
/// </summary>
internal sealed class BlockingStream(Stream inner) : Stream
{
    /// <summary>True (the default): asynchronous calls block the caller. Set it false before handing the stream to asynchronous code.</summary>
    public bool Blocking { get; set; } = true;

    public override bool CanRead => inner.CanRead;
    public override bool CanWrite => inner.CanWrite;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
    public override int Read(Span<byte> buffer) => inner.Read(buffer);
    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
    public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);
    public override void Flush() => inner.Flush();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!Blocking) return inner.ReadAsync(buffer, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        return new ValueTask<int>(inner.Read(buffer.Span));
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!Blocking) return inner.WriteAsync(buffer, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        inner.Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => Blocking ? Task.CompletedTask : inner.FlushAsync(cancellationToken);

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
