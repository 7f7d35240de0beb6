using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Numerics;
using System.Security;

namespace Replication.PowerShell;

/// <summary>
/// The text stored for a <c>Set-ReplicationKey -Value</c> argument. Values are text; a scalar that has one obvious,
/// culture-independent text form is converted to it, so the same script stores the same bytes on every machine:
/// numbers with the invariant culture ("1.5", never "1,5"), booleans as True/False, dates and times as ISO 8601
/// round-trip text ("o": 2026-01-02T03:04:05.0000000Z), TimeSpan as "c" (1.02:03:04), GUIDs as "D", enums by name.
/// Anything else (a hashtable, an array, a custom object, a SecureString) is refused rather than stored as its type
/// name: the caller converts it deliberately (ConvertTo-Json, -join, ConvertFrom-SecureString). Stateless.
/// </summary>
internal static class ValueText
{
    /// <summary>The text for <paramref name="value"/>, or null with a <paramref name="problem"/> to report.</summary>
    public static string? Convert(object? value, out string? problem)
    {
        problem = null;
        if (value is PSObject wrapped) value = wrapped.BaseObject;
        switch (value)
        {
            case null: return string.Empty;
            case string s: return s;
            case char c: return c.ToString();
            case bool b: return b ? "True" : "False";
            case DateTime d: return d.ToString("o", CultureInfo.InvariantCulture);
            case DateTimeOffset d: return d.ToString("o", CultureInfo.InvariantCulture);
            case TimeSpan t: return t.ToString("c", CultureInfo.InvariantCulture);
            case Guid g: return g.ToString("D");
            case Enum e: return e.ToString();
            case BigInteger n: return n.ToString(CultureInfo.InvariantCulture);
            case Uri u: return u.OriginalString;
            case Version v: return v.ToString();
            case IConvertible n when IsNumber(n.GetTypeCode()): return n.ToString(CultureInfo.InvariantCulture);
            case SecureString:
                problem = "-Value is a SecureString: it is a secret, and keys and values are stored in clear. Convert it deliberately if you mean to store it.";
                return null;
        }
        string kind = value switch
        {
            PSCustomObject => "a custom object",
            IDictionary => $"a {value.GetType().Name}",
            IEnumerable => $"a collection ({value.GetType().Name})",
            _ => $"a {value.GetType().FullName}",
        };
        problem = $"-Value must be text; {kind} would be stored as its type name. Convert it first, for example " +
            "-Value ($value | ConvertTo-Json -Compress -Depth 10), or -Value ($items -join ','). " +
            "Numbers, booleans, dates, GUIDs and enums are converted for you, culture-invariantly.";
        return null;
    }

    private static bool IsNumber(TypeCode code) => code is TypeCode.SByte or TypeCode.Byte or TypeCode.Int16 or TypeCode.UInt16
        or TypeCode.Int32 or TypeCode.UInt32 or TypeCode.Int64 or TypeCode.UInt64 or TypeCode.Single or TypeCode.Double or TypeCode.Decimal;
}
