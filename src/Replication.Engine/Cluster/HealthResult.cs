namespace Replication;

/// <summary>Verdict of one health check (Test-ReplicationCluster). Ordered: a runbook may compare (Result -ge 'Warning').</summary>
// 64-bit on purpose: PowerShell's ConvertTo-Json writes 64-bit enums by name (issue 12, item 9).
public enum HealthResult : long
{
    Pass = 0,
    Warning = 1,
    Fail = 2,
}
