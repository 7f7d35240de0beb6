using System.Text.RegularExpressions;
using Xunit;

namespace Replication.Engine.Tests.Ring;

/// <summary>The ring, move planner and leader balancer are pure functions of cluster state (STYLE.md,
/// "placement and balancing as a pure function"): no I/O, clock, randomness or threads in Ring/.</summary>
public sealed class RingPurityTests
{
    private static readonly (string Name, Regex Pattern)[] Forbidden =
    {
        ("System.Net", new Regex(@"\bSystem\.Net\b")),
        ("System.IO file APIs", new Regex(@"\b(File|FileStream|Directory)\.|\bnew\s+FileStream\b")),
        ("DateTime.Now/UtcNow", new Regex(@"\bDateTime(Offset)?\.(Utc)?Now\b")),
        ("Stopwatch", new Regex(@"\bStopwatch\b")),
        ("Random", new Regex(@"\bRandom\b")),
        ("Task", new Regex(@"\bTask\b")),
        ("Thread", new Regex(@"\bThread\b|\bThreading\b")),
        ("Environment", new Regex(@"\bEnvironment\.")),
        ("string.GetHashCode", new Regex(@"\.GetHashCode\(\)")),
    };

    [Fact]
    public void RingFolderUsesNoIoClockRandomnessOrThreads()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Replication.slnx"))) dir = dir.Parent;
        Assert.True(dir is not null, "repository root (Replication.slnx) not found above " + AppContext.BaseDirectory);
        var files = Directory.GetFiles(Path.Combine(dir!.FullName, "src", "Replication.Engine", "Ring"), "*.cs", SearchOption.AllDirectories);
        Assert.NotEmpty(files);
        var violations = new List<string>();
        foreach (var file in files)
        {
            var lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                string code = lines[i];
                int comment = code.IndexOf("//", StringComparison.Ordinal);
                if (comment >= 0) code = code[..comment];
                foreach (var (name, pattern) in Forbidden)
                    if (pattern.IsMatch(code)) violations.Add($"{Path.GetFileName(file)}:{i + 1} uses {name}: {lines[i].Trim()}");
            }
        }
        Assert.True(violations.Count == 0, string.Join(Environment.NewLine, violations));
    }
}
