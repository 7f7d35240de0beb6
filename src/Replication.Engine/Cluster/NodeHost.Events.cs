using Replication.Engine.Raft;

namespace Replication.Engine.Cluster;

/// <summary>
/// Leadership and membership changes as events of the node's history (ClusterNode.Events.cs), found by comparing
/// each published status with the one before: a group this node now leads (with why its campaign began), one it
/// stopped leading (with the core's reason: check-quorum, a higher term, a transfer), and, on the leader, a change
/// of the group's voters or learners. Runs on the loop thread; costs nothing when nothing changed.
/// </summary>
internal sealed partial class NodeHost
{
    private void NoteChanges(IReadOnlyDictionary<int, GroupStatus> before, IReadOnlyDictionary<int, GroupStatus> after)
    {
        if (_options.RecordEvent is not { } record) return;
        foreach (var (group, now) in after)
        {
            before.TryGetValue(group, out var was);
            var wasRole = was?.Role ?? RaftRole.Follower;
            if (now.Role == RaftRole.Leader && wasRole != RaftRole.Leader)
            {
                string why = _groups.TryGetValue(group, out var g) && g.Core.CampaignReason.Length > 0 ? g.Core.CampaignReason : "sole voter at start";
                record(ReplicationEventType.LeaderElected, group, now.Term, $"Node {Id} became leader in term {now.Term} ({why}).");
            }
            else if (wasRole == RaftRole.Leader && now.Role != RaftRole.Leader)
            {
                record(ReplicationEventType.LeaderLost, group, now.Term, $"Node {Id} stopped leading in term {now.Term}: {now.StateReason}.");
            }
            if (now.Role == RaftRole.Leader && was is { Role: RaftRole.Leader }
                && (!now.Voters.SequenceEqual(was.Voters) || !now.Learners.SequenceEqual(was.Learners)))
            {
                record(ReplicationEventType.MembershipChanged, group, now.Term,
                    $"Members changed: voters {Ids(was.Voters)} → {Ids(now.Voters)}, learners {Ids(was.Learners)} → {Ids(now.Learners)}.");
            }
        }
    }

    private static string Ids(IReadOnlyList<int> ids) => ids.Count == 0 ? "none" : string.Join(",", ids);
}
