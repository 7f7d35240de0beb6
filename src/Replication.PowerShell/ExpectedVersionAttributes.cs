using System.Management.Automation;

namespace Replication.PowerShell;

/// <summary>
/// For <c>-ExpectedVersion</c>: a blank value (an empty or all-space CSV cell, <c>''</c>) means "no condition", as
/// <c>$null</c> does, instead of the 0 ("must not exist") PowerShell would convert it to. So
/// <c>Import-Csv keys.csv | Set-ReplicationKey</c> writes rows whose ExpectedVersion cell is empty unconditionally.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class BlankAsNullAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject wrapped ? wrapped.BaseObject : inputData;
        return value is string text && string.IsNullOrWhiteSpace(text) ? null : inputData;
    }
}

/// <summary>
/// A lower bound for a nullable version parameter that, unlike <see cref="ValidateRangeAttribute"/>, lets
/// <c>$null</c> (no condition) through.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class ValidateVersionAttribute(long minimum) : ValidateArgumentsAttribute
{
    public long Minimum { get; } = minimum;

    protected override void Validate(object arguments, EngineIntrinsics engineIntrinsics)
    {
        var value = arguments is PSObject wrapped ? wrapped.BaseObject : arguments;
        if (value is null) return;
        if (Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture) < Minimum)
            throw new ValidationMetadataException($"A version is {Minimum} or more (or empty for no condition); got {value}.");
    }
}
