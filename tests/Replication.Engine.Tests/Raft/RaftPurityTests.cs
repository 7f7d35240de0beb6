using System.Text.RegularExpressions;
using Xunit;

namespace Replication.Engine.Tests.Raft;

/// <summary>The consensus core stays a pure state machine (DESIGN.md, "The consensus core is a pure
/// state machine"; STYLE.md, consensus core): no network, files, clock, timers or threads.</summary>
public sealed class RaftPurityTests
{
    private static readonly (string Name, Regex Pattern)[] Forbidden =
    {
        ("System.Net", new Regex(@"\bSystem\.Net\b")),
        ("System.IO file APIs", new Regex(@"\b(File|FileStream|Directory)\.|\bnew\s+FileStream\b")),
        ("DateTime.Now/UtcNow", new Regex(@"\bDateTime(Offset)?\.(Utc)?Now\b")),
        ("Stopwatch", new Regex(@"\bStopwatch\b")),
        ("Task.Delay", new Regex(@"\bTask\.Delay\b")),
        ("Thread", new Regex(@"\bThread\b|\bThreading\b")),
        ("Environment.TickCount", new Regex(@"\bEnvironment\.TickCount")),
    };

    [Fact]
    public void RaftFolderUsesNoIoClockOrThreads()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Replication.slnx"))) dir = dir.Parent;
        Assert.True(dir is not null, "repository root (Replication.slnx) not found above " + AppContext.BaseDirectory);
        var raft = Path.Combine(dir!.FullName, "src", "Replication.Engine", "Raft");
        var files = Directory.GetFiles(raft, "*.cs", SearchOption.AllDirectories);
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
