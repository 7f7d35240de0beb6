using System.Management.Automation;

namespace Replication.PowerShell;

/// <summary>
/// Runs when pwsh imports the module assembly: registers the native-library resolver before any
/// cmdlet can touch SQLite. On Remove-Module the resolver is unhooked (libraries already loaded stay
/// loaded, as every assembly does). Clusters keep running after Remove-Module: the registry lives in
/// the process, and importing the module again finds them.
/// </summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    public void OnImport() => NativeLibraryResolver.Register();

    public void OnRemove(PSModuleInfo psModuleInfo) => NativeLibraryResolver.Unregister();
}
