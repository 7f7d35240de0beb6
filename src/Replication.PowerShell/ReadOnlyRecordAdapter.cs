using System.Collections.Concurrent;
using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Reflection;

namespace Replication.PowerShell;

/// <summary>
/// Presents the engine's output records (ReplicationNode, ReplicationShard, ReplicationKey, ...) to PowerShell as
/// read-only snapshots. The records have <c>init</c> accessors, which PowerShell would show as setters in Get-Member
/// and let a script assign (changing a copy nobody reads); through this adapter each public property is
/// <c>{get;}</c> and an assignment fails with a clear message. Registered per type in module/Replication.types.ps1xml
/// (<c>&lt;TypeAdapter&gt;</c>), so the engine needs no reference to PowerShell. Values are the records' own:
/// enums stay enums, lists stay lists. Thread-safe: the caches are concurrent and the records immutable.
/// </summary>
public sealed class ReadOnlyRecordAdapter : PSPropertyAdapter
{
    private static readonly ConcurrentDictionary<Type, PropertyInfo[]> Properties = new();
    private static readonly ConcurrentDictionary<Type, string> TypeNames = new();

    private static PropertyInfo[] PropertiesOf(Type type) => Properties.GetOrAdd(type, t => t
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.GetIndexParameters().Length == 0 && p.GetMethod is { IsPublic: true })
        .ToArray());

    public override Collection<PSAdaptedProperty> GetProperties(object baseObject)
    {
        var result = new Collection<PSAdaptedProperty>();
        foreach (var property in PropertiesOf(baseObject.GetType())) result.Add(new PSAdaptedProperty(property.Name, property));
        return result;
    }

    public override PSAdaptedProperty? GetProperty(object baseObject, string propertyName)
    {
        foreach (var property in PropertiesOf(baseObject.GetType()))
            if (string.Equals(property.Name, propertyName, StringComparison.OrdinalIgnoreCase))
                return new PSAdaptedProperty(property.Name, property);
        return null;
    }

    public override object? GetPropertyValue(PSAdaptedProperty adaptedProperty) =>
        ((PropertyInfo)adaptedProperty.Tag).GetValue(adaptedProperty.BaseObject);

    public override string GetPropertyTypeName(PSAdaptedProperty adaptedProperty) =>
        TypeNames.GetOrAdd(((PropertyInfo)adaptedProperty.Tag).PropertyType, ShortName);

    /// <summary>A type name as Get-Member shows one: keywords for primitives (string, long), no namespace for
    /// System and Replication types, generic arguments in brackets (IReadOnlyList[int]), Nullable as T?.</summary>
    internal static string ShortName(Type type)
    {
        if (Nullable.GetUnderlyingType(type) is { } inner) return ShortName(inner) + "?";
        if (type.IsArray) return ShortName(type.GetElementType()!) + "[]";
        string? keyword = Type.GetTypeCode(type) switch
        {
            TypeCode.String => "string", TypeCode.Boolean => "bool", TypeCode.Int32 => "int", TypeCode.Int64 => "long",
            TypeCode.Double => "double", TypeCode.Decimal => "decimal", TypeCode.Byte => "byte", TypeCode.Char => "char",
            _ => null,
        };
        if (keyword is not null && !type.IsEnum) return keyword;
        string name = type.Namespace is "System" or "Replication" ? type.Name : type.FullName ?? type.Name;
        if (!type.IsGenericType) return name;
        name = name[..name.IndexOf('`')];
        return $"{name}[{string.Join(", ", type.GetGenericArguments().Select(ShortName))}]";
    }

    public override bool IsGettable(PSAdaptedProperty adaptedProperty) => true;

    public override bool IsSettable(PSAdaptedProperty adaptedProperty) => false;

    public override void SetPropertyValue(PSAdaptedProperty adaptedProperty, object value) =>
        throw new NotSupportedException($"{adaptedProperty.Name} is read-only: {adaptedProperty.BaseObject.GetType().Name} is a snapshot of the cluster. " +
            "Use the cmdlets to change the cluster, or Select-Object to make an editable copy.");
}
