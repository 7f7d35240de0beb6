namespace Replication.Engine.Transport;

/// <summary>
/// The fixed 10-byte header in front of every frame, as parsed and validated by
/// <see cref="FrameCodec.ParseHeader"/>: a value of this type always has a known
/// <see cref="Type"/>, the supported version and a length within the limit it was parsed with.
/// </summary>
/// <param name="PayloadLength">Bytes of payload after the header.</param>
/// <param name="Type">What the payload holds.</param>
/// <param name="Checksum">CRC-32C of the payload.</param>
public readonly record struct FrameHeader(int PayloadLength, FrameType Type, uint Checksum);
