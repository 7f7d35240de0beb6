using System.Globalization;
using System.Management.Automation;

namespace Replication.PowerShell;

/// <summary>
/// Lets a <c>-Timeout</c> parameter, which counts seconds as PowerShell's own cmdlets do (<c>Wait-Job -Timeout</c>,
/// <c>-TimeoutSec</c>), also take a <see cref="TimeSpan"/> or an <c>hh:mm:ss</c> string: both become their total seconds
/// before the binder converts the value to <see cref="double"/>. So <c>-Timeout 5</c>, <c>-Timeout 0.5</c>,
/// <c>-Timeout ([timespan]'00:00:05')</c> and <c>-Timeout 00:00:05</c> all mean what they say. A plain number is left
/// to the binder (invariant culture). Positivity is checked by the cmdlet (ErrorId InvalidTimeout).
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class TimeoutSecondsAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject wrapped ? wrapped.BaseObject : inputData;
        return value switch
        {
            TimeSpan span => span.TotalSeconds,
            string text when text.Contains(':') && TimeSpan.TryParse(text.Trim(), CultureInfo.InvariantCulture, out var parsed) => parsed.TotalSeconds,
            _ => inputData,
        };
    }
}
