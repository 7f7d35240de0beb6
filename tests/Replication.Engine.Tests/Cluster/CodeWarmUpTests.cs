using Replication.Engine;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// The start-up warm-up (CodeWarmUp.cs) prepares the leadership-change paths' framework code by the names of their async
/// methods: a rename would silently leave a path to be compiled in the middle of the first switchover again. These tests
/// say which name no longer matches anything.
/// </summary>
public class CodeWarmUpTests
{
    [Fact]
    public void Every_path_name_still_names_an_async_method_that_is_prepared()
    {
        var prepared = CodeWarmUp.PrepareAsyncMachinery();
        Assert.NotEmpty(prepared);
        var orphaned = CodeWarmUp.PathNames.Where(name => !prepared.Any(m => m.Contains(name, StringComparison.Ordinal))).ToArray();
        Assert.True(orphaned.Length == 0, $"No async method of the engine is named after: {string.Join(", ", orphaned)}");
    }

    [Fact]
    public void The_switchover_and_the_transfer_are_prepared()
    {
        var prepared = CodeWarmUp.PrepareAsyncMachinery();
        Assert.Contains(prepared, m => m.StartsWith("<FailoverAsync>", StringComparison.Ordinal));
        Assert.Contains(prepared, m => m.StartsWith("<TransferHereAsync>", StringComparison.Ordinal));
    }
}
