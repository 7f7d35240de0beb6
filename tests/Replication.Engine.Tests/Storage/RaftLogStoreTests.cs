using Replication.Engine.Raft;
using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Storage;

public sealed class RaftLogStoreTests : IDisposable
{
    private readonly TempFolder _dir = new();
    private string DbPath => _dir.File("raft.db");

    public void Dispose() => _dir.Dispose();

    private static LogEntry E(long index, long term, string data = "", EntryType type = EntryType.Normal) =>
        new(index, term, type, System.Text.Encoding.UTF8.GetBytes(data));

    private static List<LogEntry> Range(long from, long to, long term) =>
        Enumerable.Range((int)from, (int)(to - from + 1)).Select(i => E(i, term, $"cmd-{i}@{term}")).ToList();

    private static void AssertEntries(IReadOnlyList<LogEntry> expected, IReadOnlyList<LogEntry> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Index, actual[i].Index);
            Assert.Equal(expected[i].Term, actual[i].Term);
            Assert.Equal(expected[i].Type, actual[i].Type);
            Assert.Equal(expected[i].Data, actual[i].Data);
        }
    }

    [Fact]
    public void EntriesAndHardStateSurviveReopen()
    {
        var entries = new List<LogEntry>
        {
            E(1, 1),                                   // a leader's empty no-op
            E(2, 1, "put a=1"),
            E(3, 2, "conf", EntryType.ConfChange),
            new(4, 2, EntryType.Normal, Enumerable.Range(0, 70_000).Select(i => (byte)i).ToArray()),
        };
        using (var store = new RaftLogStore(DbPath))
            store.Save([new GroupWrite(3, new HardState(2, 5, 3), entries)]);

        using (var store = new RaftLogStore(DbPath))
        {
            var log = store.Load(3);
            Assert.Equal(new HardState(2, 5, 3), log.State);
            AssertEntries(entries, log.Entries);
            Assert.Empty(log.Entries[0].Data);
        }
    }

    /// <summary>RaftLogStore.ReserveWal: zeros after the WAL's last frame are never taken for data, and a WAL left by a crash
    /// (frames not yet checkpointed into raft.db) keeps every frame when its end is extended on the next open.</summary>
    [Fact]
    public void TheWalIsReservedAndAWalLeftByACrashKeepsItsFramesWhenExtended()
    {
        string crashed = _dir.File("crashed.db");
        using (var store = new RaftLogStore(DbPath))
        {
            Assert.True(new FileInfo(DbPath + "-wal").Length >= RaftLogStore.WalReserveBytes);
            store.Save([new GroupWrite(1, new HardState(3, 1, 0), Range(1, 50, 3))]);
            // A crash: raft.db and its WAL as they are on disk while the store is open (a clean close checkpoints and
            // deletes the WAL). The WAL is cut after its last frame, as a WAL that never reached the reservation is.
            File.Copy(DbPath, crashed);
            var wal = File.ReadAllBytes(DbPath + "-wal");
            int end = Array.FindLastIndex(wal, b => b != 0) + 1;
            const int header = 32, frame = 24 + 4096;
            int framesEnd = header + (end - header + frame - 1) / frame * frame;
            Assert.True(framesEnd > header && framesEnd < RaftLogStore.WalReserveBytes, $"frames end at {framesEnd}");
            File.WriteAllBytes(crashed + "-wal", wal[..framesEnd]);
        }
        using (var reopened = new RaftLogStore(crashed))
        {
            Assert.True(new FileInfo(crashed + "-wal").Length >= RaftLogStore.WalReserveBytes);
            Assert.Equal(new HardState(3, 1, 0), reopened.Load(1).State);
            AssertEntries(Range(1, 50, 3), reopened.Load(1).Entries);
            reopened.Save([new GroupWrite(1, null, Range(51, 60, 3))]);
        }
        using (var again = new RaftLogStore(crashed))
            AssertEntries(Range(1, 60, 3), again.Load(1).Entries);
    }

    [Fact]
    public void UnknownGroupLoadsEmpty()
    {
        using var store = new RaftLogStore(DbPath);
        var log = store.Load(42);
        Assert.Equal(HardState.Empty, log.State);
        Assert.Empty(log.Entries);
        Assert.Empty(store.Groups());
    }

    [Fact]
    public void NullStateLeavesHardStateUnchanged()
    {
        using var store = new RaftLogStore(DbPath);
        store.Save([new GroupWrite(1, new HardState(4, 2, 0), [])]);
        store.Save([new GroupWrite(1, null, Range(1, 2, 4))]);
        var log = store.Load(1);
        Assert.Equal(new HardState(4, 2, 0), log.State);
        Assert.Equal(2, log.Entries.Count);
    }

    [Fact]
    public void SaveReplacesConflictingSuffix()
    {
        // Raft 5.3: a follower deletes the conflicting entry and all that follow it.
        using var store = new RaftLogStore(DbPath);
        store.Save([new GroupWrite(1, new HardState(1, 1, 2), Range(1, 5, 1))]);
        store.Save([new GroupWrite(1, new HardState(2, 0, 2), Range(3, 4, 2))]);

        var log = store.Load(1);
        AssertEntries([.. Range(1, 2, 1), .. Range(3, 4, 2)], log.Entries);
        Assert.Equal(new HardState(2, 0, 2), log.State);
    }

    [Fact]
    public void AppendAfterLastEntryKeepsPrefix()
    {
        using var store = new RaftLogStore(DbPath);
        store.Save([new GroupWrite(1, null, Range(1, 3, 1))]);
        store.Save([new GroupWrite(1, null, Range(4, 6, 1))]);
        AssertEntries(Range(1, 6, 1), store.Load(1).Entries);
    }

    [Fact]
    public void OneSaveCommitsSeveralGroups()
    {
        using (var store = new RaftLogStore(DbPath))
        {
            store.Save(
            [
                new GroupWrite(10, new HardState(1, 1, 0), Range(1, 3, 1)),
                new GroupWrite(2, null, Range(1, 1, 1)),
                new GroupWrite(7, new HardState(5, 0, 0), []),
            ]);
            Assert.Equal([2, 7, 10], store.Groups());
        }
        using (var store = new RaftLogStore(DbPath))
        {
            Assert.Equal([2, 7, 10], store.Groups());
            AssertEntries(Range(1, 3, 1), store.Load(10).Entries);
            Assert.Equal(new HardState(1, 1, 0), store.Load(10).State);
            AssertEntries(Range(1, 1, 1), store.Load(2).Entries);
            Assert.Equal(HardState.Empty, store.Load(2).State);
            Assert.Empty(store.Load(7).Entries);
            Assert.Equal(new HardState(5, 0, 0), store.Load(7).State);
        }
    }

    [Fact]
    public void SaveSnapshotCompactsOrDiscardsTheLogAndKeepsItsMetadata()
    {
        var at4 = new SnapshotMetadata(4, 1, [1, 2, 3], [4]);
        using (var store = new RaftLogStore(DbPath))
        {
            store.Save([new GroupWrite(1, null, Range(1, 10, 1)), new GroupWrite(2, null, Range(1, 10, 1))]);
            store.SaveSnapshot(1, at4, discardLog: false);
        }
        using (var store = new RaftLogStore(DbPath))
        {
            var g1 = store.Load(1);
            AssertEntries(Range(5, 10, 1), g1.Entries);
            Assert.Equal(at4.Index, g1.Snapshot!.Index);
            Assert.Equal(at4.Voters, g1.Snapshot.Voters);
            Assert.Equal(at4.Learners, g1.Snapshot.Learners);
            AssertEntries(Range(1, 10, 1), store.Load(2).Entries); // other groups untouched
            Assert.Null(store.Load(2).Snapshot);
            // A snapshot received from a leader replaces the whole log, even entries after it.
            store.SaveSnapshot(1, new SnapshotMetadata(7, 1, [1, 2, 3], []), discardLog: true);
            Assert.Empty(store.Load(1).Entries);
            Assert.Equal(7, store.Load(1).Snapshot!.Index);
        }
    }

    [Fact]
    public void TruncateAfterDropsOnlyTheTailOfThatGroup()
    {
        using (var store = new RaftLogStore(DbPath))
        {
            store.Save([new GroupWrite(1, null, Range(1, 10, 1)), new GroupWrite(2, null, Range(1, 10, 1))]);
            store.TruncateAfter(1, 6);
        }
        using var reopened = new RaftLogStore(DbPath);
        AssertEntries(Range(1, 6, 1), reopened.Load(1).Entries);
        AssertEntries(Range(1, 10, 1), reopened.Load(2).Entries);
    }

    [Fact]
    public void AGapAfterTheSnapshotIsDetected()
    {
        using (var store = new RaftLogStore(DbPath))
        {
            store.Save([new GroupWrite(1, null, Range(1, 10, 1))]);
            store.SaveSnapshot(1, new SnapshotMetadata(2, 1, [1], []), discardLog: false);
        }
        TempFolder.Exec(DbPath, "DELETE FROM raft_log WHERE grp = 1 AND idx = 3");
        using var reopened = new RaftLogStore(DbPath);
        var ex = Assert.Throws<StorageCorruptException>(() => reopened.Load(1));
        Assert.Contains("entry 4", ex.Message);
    }

    [Fact]
    public void FlippedDataByteIsDetected()
    {
        using (var store = new RaftLogStore(DbPath))
            store.Save([new GroupWrite(7, null, Range(1, 5, 1))]);

        byte[] data = System.Text.Encoding.UTF8.GetBytes("cmd-3@1");
        data[2] ^= 0x01;
        TempFolder.Exec(DbPath, "UPDATE raft_log SET data = @d WHERE grp = 7 AND idx = 3", ("@d", data));

        using var reopened = new RaftLogStore(DbPath);
        var ex = Assert.Throws<StorageCorruptException>(() => reopened.Load(7));
        Assert.Contains(DbPath, ex.Message);
        Assert.Contains("group 7", ex.Message);
        Assert.Contains("entry 3", ex.Message);
        Assert.Equal("StorageCorrupt", ex.ErrorId);
    }

    [Fact]
    public void AlteredTermIsDetected()
    {
        using var store = new RaftLogStore(DbPath);
        store.Save([new GroupWrite(1, null, Range(1, 3, 1))]);
        TempFolder.Exec(DbPath, "UPDATE raft_log SET term = 9 WHERE grp = 1 AND idx = 2");
        var ex = Assert.Throws<StorageCorruptException>(() => store.Load(1));
        Assert.Contains("entry 2", ex.Message);
    }

    [Fact]
    public void GapInIndexesIsDetected()
    {
        using var store = new RaftLogStore(DbPath);
        store.Save([new GroupWrite(1, null, Range(1, 5, 1))]);
        TempFolder.Exec(DbPath, "DELETE FROM raft_log WHERE grp = 1 AND idx = 3");
        var ex = Assert.Throws<StorageCorruptException>(() => store.Load(1));
        Assert.Contains("entry 4", ex.Message);
        Assert.Contains("gap", ex.Message);
    }

    [Fact]
    public void UnknownSchemaVersionIsRefused()
    {
        using (var store = new RaftLogStore(DbPath)) { }
        TempFolder.Exec(DbPath, "PRAGMA user_version = 99");
        var ex = Assert.Throws<StorageCorruptException>(() => new RaftLogStore(DbPath));
        Assert.Contains("99", ex.Message);
    }

    [Fact]
    public void StateDbIsNotOpenedAsRaftLog()
    {
        string path = _dir.File("state.db");
        using (var kv = new KvStore(path)) { }
        Assert.Throws<StorageCorruptException>(() => new RaftLogStore(path));
    }

    [Fact]
    public void WriterIsDurableWal()
    {
        using var store = new RaftLogStore(DbPath);
        Assert.Equal("wal", store.WriterPragma("journal_mode"));
        Assert.Equal("2", store.WriterPragma("synchronous")); // FULL
    }

    [Fact]
    public void FileIsInWalModeWithSchemaVersion()
    {
        using var store = new RaftLogStore(DbPath);
        using var conn = TempFolder.Raw(DbPath);
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", (string)cmd.ExecuteScalar()!);
        cmd.CommandText = "PRAGMA user_version";
        Assert.Equal((long)RaftLogStore.SchemaVersion, (long)cmd.ExecuteScalar()!);
    }
}
