using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>Turns the engine's "moves left" reports into progress records (through a <see cref="ProgressPump"/>): the percentage
/// is the share of the largest count seen that is done. Thread-safe as the pump is.</summary>
internal sealed class MoveProgress(ProgressPump pump, string activity) : IProgress<int>
{
    private int _most;

    public void Report(int value)
    {
        int most = Math.Max(Volatile.Read(ref _most), value);
        Volatile.Write(ref _most, most);
        pump.Report(new BackupProgress(activity, value == 0 ? "replicas in place; waiting for leaders and leaving nodes" : $"{value} replica move(s) left", most - value, Math.Max(1, most)));
    }
}
