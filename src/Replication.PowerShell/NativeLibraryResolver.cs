using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace Replication.PowerShell;

/// <summary>
/// Finds native libraries (SQLite's e_sqlite3) that ship under <c>runtimes/&lt;rid&gt;/native/</c>
/// beside the module's assembly. pwsh does not read a module's .deps.json, so without this the first
/// SQLite connection fails with DllNotFoundException (see shared/TOOLCHAIN.md, "The trap").
/// The module is published without a runtime identifier, so every platform's native build is present;
/// this picks the one for the running OS and architecture.
/// Thread-safe: registration takes a lock; the handler itself only reads immutable state.
/// </summary>
internal static class NativeLibraryResolver
{
    private static readonly object Gate = new();
    private static bool _registered;

    public static void Register()
    {
        lock (Gate)
        {
            if (_registered) return;
            AssemblyLoadContext.Default.ResolvingUnmanagedDll += OnResolvingUnmanagedDll;
            _registered = true;
        }
    }

    public static void Unregister()
    {
        lock (Gate)
        {
            if (!_registered) return;
            AssemblyLoadContext.Default.ResolvingUnmanagedDll -= OnResolvingUnmanagedDll;
            _registered = false;
        }
    }

    private static IntPtr OnResolvingUnmanagedDll(Assembly requestingAssembly, string libraryName)
    {
        var path = FindLibrary(libraryName);
        return path is not null && NativeLibrary.TryLoad(path, out var handle) ? handle : IntPtr.Zero;
    }

    /// <summary>The first existing file for <paramref name="libraryName"/> under our runtimes folder,
    /// trying the runtime's own identifier first, then the portable ones; null if none exists.</summary>
    internal static string? FindLibrary(string libraryName)
    {
        var moduleDir = Path.GetDirectoryName(typeof(NativeLibraryResolver).Assembly.Location);
        if (string.IsNullOrEmpty(moduleDir)) return null;
        foreach (var rid in CandidateRuntimeIdentifiers())
            foreach (var file in CandidateFileNames(libraryName))
            {
                var path = Path.Combine(moduleDir, "runtimes", rid, "native", file);
                if (File.Exists(path)) return path;
            }
        return null;
    }

    /// <summary>RuntimeInformation.RuntimeIdentifier (e.g. linux-x64, or a distro rid such as
    /// alpine.3.19-x64 for a source-built runtime), then the portable rid from OS and process
    /// architecture (linux-musl-* on musl systems such as Alpine).</summary>
    internal static IEnumerable<string> CandidateRuntimeIdentifiers()
    {
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var own = RuntimeInformation.RuntimeIdentifier;
        if (!string.IsNullOrEmpty(own) && seen.Add(own)) yield return own;

        var arch = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => "x64",
            Architecture.X86 => "x86",
            Architecture.Arm64 => "arm64",
            Architecture.Arm => "arm",
            Architecture.Armv6 => "armel",
            Architecture.S390x => "s390x",
            Architecture.Ppc64le => "ppc64le",
            Architecture.LoongArch64 => "loongarch64",
            Architecture.Wasm => "wasm",
            _ => RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant(),
        };

        string os;
        if (OperatingSystem.IsWindows()) os = "win";
        else if (OperatingSystem.IsMacOS()) os = "osx";
        else if (OperatingSystem.IsLinux()) os = IsMusl(own) ? "linux-musl" : "linux";
        else if (OperatingSystem.IsFreeBSD()) os = "freebsd";
        else if (OperatingSystem.IsBrowser()) os = "browser";
        else os = "unix";

        var portable = $"{os}-{arch}";
        if (seen.Add(portable)) yield return portable;
    }

    private static bool IsMusl(string ownRid)
    {
        if (ownRid.Contains("musl", StringComparison.OrdinalIgnoreCase) || ownRid.StartsWith("alpine", StringComparison.OrdinalIgnoreCase))
            return true;
        try
        {
            // musl's dynamic loader is /lib/ld-musl-<arch>.so.1; glibc systems have none.
            return Directory.Exists("/lib") && Directory.EnumerateFiles("/lib", "ld-musl-*.so.1").Any();
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>"e_sqlite3" -> e_sqlite3.dll on Windows; libe_sqlite3.so on Linux; libe_sqlite3.dylib on macOS.
    /// A name that already carries a suffix or prefix is tried as given first.</summary>
    internal static IEnumerable<string> CandidateFileNames(string libraryName)
    {
        yield return libraryName;
        string suffix = OperatingSystem.IsWindows() ? ".dll" : OperatingSystem.IsMacOS() ? ".dylib" : ".so";
        var stem = libraryName.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) ? libraryName[..^suffix.Length] : libraryName;
        if (!OperatingSystem.IsWindows() && !stem.StartsWith("lib", StringComparison.Ordinal))
            yield return "lib" + stem + suffix;
        yield return stem + suffix;
    }
}
