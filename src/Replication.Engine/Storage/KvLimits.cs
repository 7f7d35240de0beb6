using System.Text;

namespace Replication.Engine.Storage;

/// <summary>
/// Size limits on keys and values, in UTF-8 bytes (the stored form), and the one check that
/// enforces them. The node host validates before proposing, so a write the state machine would
/// refuse never reaches the Raft log; <see cref="KvCommand.Decode"/> enforces the same limits,
/// so an entry that breaks them is treated as corrupt. Thread-safe.
/// </summary>
public static class KvLimits
{
    /// <summary>Longest key, in UTF-8 bytes. Keeps a B-tree cell (and a page) holding many keys.</summary>
    public const int MaxKeyBytes = 1024;

    /// <summary>Largest value, in UTF-8 bytes (1 MiB). Bounds a Raft entry and a decoder's allocation.</summary>
    public const int MaxValueBytes = 1 << 20;

    /// <summary>
    /// ErrorId for a key, value or prefix that is not valid UTF-16 (a lone surrogate). Such a
    /// string has no UTF-8 form, so storing it would silently store a different key.
    /// </summary>
    public const string InvalidEncoding = "InvalidEncoding";

    // Throws on a lone surrogate instead of replacing it with U+FFFD.
    internal static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Throws <see cref="InvalidKeyException"/> (ErrorId EmptyKey, KeyTooLong, ValueTooLarge, or
    /// <see cref="InvalidEncoding"/>) unless <paramref name="key"/> is 1..MaxKeyBytes UTF-8 bytes
    /// and <paramref name="value"/> (if any) is at most MaxValueBytes.
    /// </summary>
    public static void Validate(string key, string? value)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length == 0)
            throw new InvalidKeyException(InvalidKeyException.EmptyKey, "A key must not be empty.") { Target = key };
        // A UTF-16 char is at most 3 UTF-8 bytes: skip the exact count when it cannot matter.
        if (key.Length > MaxKeyBytes / 3)
        {
            int n = ByteCount(key, key, "key");
            if (n > MaxKeyBytes)
                throw new InvalidKeyException(InvalidKeyException.KeyTooLong,
                    $"The key is {n} UTF-8 bytes long; the limit is {MaxKeyBytes}.") { Target = key };
        }
        else
        {
            ByteCount(key, key, "key");
        }
        if (value is not null)
        {
            int n = ByteCount(value, key, "value");
            if (n > MaxValueBytes)
                throw new InvalidKeyException(InvalidKeyException.ValueTooLarge,
                    $"The value of key '{Shorten(key)}' is {n} UTF-8 bytes; the limit is {MaxValueBytes}.") { Target = key };
        }
    }

    /// <summary>Checks a scan prefix: any valid UTF-16 string, including "" (all keys).</summary>
    internal static void ValidatePrefix(string prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        try
        {
            StrictUtf8.GetByteCount(prefix);
        }
        catch (EncoderFallbackException)
        {
            throw new InvalidKeyException(InvalidKeyException.InvalidPrefix,
                "The prefix contains a lone surrogate; it is not valid UTF-16.") { Target = prefix };
        }
    }

    private static int ByteCount(string s, string key, string what)
    {
        try
        {
            return StrictUtf8.GetByteCount(s);
        }
        catch (EncoderFallbackException)
        {
            throw new InvalidKeyException(InvalidEncoding,
                $"The {what} of key '{Shorten(key)}' contains a lone surrogate; it is not valid UTF-16.") { Target = key };
        }
    }

    private static string Shorten(string key) => key.Length <= 64 ? key : key[..64] + "…";
}
