using System.Text.Json;
using System.Text.Json.Serialization;
using Replication.Engine.Transport;

namespace Replication.Engine.Client;

/// <summary>
/// JSON for the parts of the client protocol that are not on the hot path (status, shard lists, the bodies
/// of administrative operations): the records themselves are the schema, so adding a property needs no
/// codec change, and an older reader ignores what it does not know. Enums travel as their names. Decoding
/// input from the wire never throws anything but <see cref="ProtocolException"/> (MalformedPayload).
/// Thread-safe.
/// </summary>
internal static class WireJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

    /// <exception cref="ProtocolException">Not JSON of <typeparamref name="T"/>.</exception>
    public static T Deserialize<T>(string json, string what)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(json, Options) ?? throw WireReader.Malformed($"The {what} is null.");
        }
        catch (Exception e) when (e is JsonException or NotSupportedException or ArgumentException or InvalidOperationException)
        {
            throw WireReader.Malformed($"The {what} does not parse: {e.Message}");
        }
    }
}
