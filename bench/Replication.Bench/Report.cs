using System.Globalization;
using System.Net;
using System.Text;

/// <summary>
/// Turns a <see cref="BenchRun"/> into the report: Markdown tables (the same text goes to the console, to
/// out/bench/bench.txt and into the README), and a self-contained chart (inline SVG, no script, no network).
/// Every round is shown, then the median; ratios are Replication's median over etcd's median.
/// </summary>
internal static class Report
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;
    private static readonly (string System, string Label, string Color)[] Systems =
    [
        ("replication", "Replication (3 node processes)", "#1f6fb4"),
        ("etcd", "etcd (3 member processes)", "#e8770e"),
        ("embedded", "Replication embedded (3 nodes in the load process)", "#5aa05a"),
    ];

    public static string Text(BenchRun run)
    {
        var sb = new StringBuilder();
        var rep = Of(run, "replication");
        var etcd = Of(run, "etcd");
        var embedded = Of(run, "embedded");
        bool hasEtcd = etcd.Count > 0;
        int[] clients = run.ClientCounts.Length > 0 ? run.ClientCounts
            : run.Rounds.FirstOrDefault()?.Phases.Where(p => p.Kind == "write").Select(p => p.Clients).ToArray() ?? [];
        double fsyncs = run.Disk.GetValueOrDefault("fsyncsPerSecondAtStart");

        sb.AppendLine($"- Machine: {run.Machine}. Run {run.Started}{(run.Quick ? " (--quick: short phases, one round; a smoke run, not a measurement)" : "")}; " +
            $"load average (1/5/15 min) {run.LoadAverageStart} at the start, {run.LoadAverageEnd} at the end.");
        sb.AppendLine($"- Disk, same run, same temp folder: {N(fsyncs)} fsyncs/s at the start and {N(run.Disk.GetValueOrDefault("fsyncsPerSecondAtEnd"))}/s at the end (4 KiB write + fsync); " +
            $"raw SQLite (WAL, synchronous=FULL) {N(run.Disk.GetValueOrDefault("sqliteOneRowCommitsPerSecond"))} one-row commits/s, {N(run.Disk.GetValueOrDefault("sqlite1000RowBatchRowsPerSecond"))} rows/s in 1000-row batches.");
        sb.AppendLine(hasEtcd
            ? $"- etcd: {run.EtcdVersion}, 3 members on loopback, default fsync and quota, --max-txn-ops {ImportBatchOf(run)}; driven over gRPC (dotnet-etcd) by the same load process."
            : $"- etcd: NOT AVAILABLE ({run.EtcdNote}): the disk's limits above are the reference, so ratios are to the fsync rate.");
        sb.AppendLine("- \"other work\" is the share of the machine (all cores) that processes other than the servers and the load process used during the phase: " +
            "the noise (it also grows when the system under test leaves cores idle that other work then takes).");
        sb.AppendLine($"- Load: a separate load process; each client is one connection doing one request at a time. Writes: random {16}-byte key, 256-byte value, " +
            "acknowledged once durable on a majority. Reads: linearizable gets of keys written in the round. Each phase " +
            $"{run.PhaseSeconds.ToString(Invariant)} s (or 200,000 requests). Systems alternate: " +
            string.Join(", ", run.Rounds.Where(r => r.System != "embedded").Select(r => $"{Name(r.System)} {r.Round}")) + ".");
        if (run.NodeTiered is bool tiered)
            sb.AppendLine(tiered
                ? "- DIAGNOSTIC RUN: the node processes ran with the runtime's default tiered compilation (--node-tiered)."
                : "- Node processes: DOTNET_TieredCompilation=0" + (run.NodePoolSpinLimit is { } spin ? $" and {Servers.PoolSpinVariable}={spin}" : "")
                    + " in their environment, as the README's service unit starts a node (\"As a systemd service\")"
                    + (run.NodePoolSpinLimit is { } set && set != Servers.PoolSpinLimit ? $" (DIAGNOSTIC: the unit's spin limit is {Servers.PoolSpinLimit})." : "."));
        if (run.ElectionTicks is int ticks) sb.AppendLine($"- DIAGNOSTIC RUN: the node processes ran with --election-ticks {ticks} instead of the engine's default.");
        sb.AppendLine(run.StoreLayout switch
        {
            "shard" => "- Replication's state layout: a file per shard (--store-layout shard).",
            "node" => "- Replication's state layout: one state.db per node (--store-layout node).",
            _ => "- Replication's state layout: the engine's default (no --store-layout).",
        });
        if (rep.FirstOrDefault() is { } first) sb.AppendLine($"- Placement (Replication): {first.Placement}.");
        if (etcd.FirstOrDefault() is { } firstEtcd) sb.AppendLine($"- Placement (etcd): {firstEtcd.Placement}.");
        sb.AppendLine();

        foreach (var (kind, title) in new[] { ("write", "Durable majority writes"), ("read", "Linearizable reads") })
        {
            sb.AppendLine($"**{title}**: requests/s and latency p50 / p99 / p99.9 in ms");
            sb.AppendLine();
            sb.AppendLine(hasEtcd
                ? "| clients | round | Replication /s | Replication ms | etcd /s | etcd ms | R / etcd | other work R / etcd |"
                : "| clients | round | Replication /s | Replication ms | x fsync rate | other work |");
            sb.AppendLine(hasEtcd ? "|---:|---|---:|---|---:|---|---:|---|" : "|---:|---|---:|---|---:|---|");
            foreach (int c in clients)
            {
                int rounds = Math.Max(rep.Count, etcd.Count);
                for (int r = 0; r < rounds; r++)
                {
                    var a = rep.ElementAtOrDefault(r)?.Phase(kind, c);
                    var b = etcd.ElementAtOrDefault(r)?.Phase(kind, c);
                    sb.AppendLine(Row(c.ToString(), (r + 1).ToString(), a, b, hasEtcd, fsyncs, kind));
                }
                if (rounds > 1)
                    sb.AppendLine(Row(c.ToString(), "**median**", Median(rep.Select(x => x.Phase(kind, c))), Median(etcd.Select(x => x.Phase(kind, c))), hasEtcd, fsyncs, kind));
            }
            sb.AppendLine();
        }

        int inFlight = rep.Concat(etcd).FirstOrDefault()?.ImportInFlight ?? 1;
        int importBatch = ImportBatchOf(run);
        sb.AppendLine($"**Pipeline import** (`Import-Csv | Set-ReplicationKey` equivalent): one client, {importBatch:N0} keys per request and {inFlight} request(s) in flight (`Set-ReplicationKey`'s default `-ThrottleLimit` is 2; etcd: {importBatch:N0}-put transactions, as many in flight); keys/s and latency per batch");
        sb.AppendLine();
        sb.AppendLine(hasEtcd ? "| round | Replication keys/s | Replication ms | etcd keys/s | etcd ms | R / etcd | other work R / etcd |" : "| round | Replication keys/s | Replication ms | other work |");
        sb.AppendLine(hasEtcd ? "|---|---:|---|---:|---|---:|---|" : "|---|---:|---|---|");
        for (int r = 0; r < Math.Max(rep.Count, etcd.Count); r++)
            sb.AppendLine(ImportRow((r + 1).ToString(), rep.ElementAtOrDefault(r)?.Phase("import", 1), etcd.ElementAtOrDefault(r)?.Phase("import", 1), hasEtcd));
        if (Math.Max(rep.Count, etcd.Count) > 1)
            sb.AppendLine(ImportRow("**median**", Median(rep.Select(x => x.Phase("import", 1))), Median(etcd.Select(x => x.Phase("import", 1))), hasEtcd));
        sb.AppendLine();

        sb.AppendLine("**CPU per server process** over each phase (median of the rounds): seconds of CPU per process (kernel share), and CPU ms per 1,000 requests (keys, for the import) summed over the three processes; the load process's own CPU in the last column");
        sb.AppendLine();
        sb.AppendLine(hasEtcd
            ? "| phase | Replication CPU s | Replication ms/1k | etcd CPU s | etcd ms/1k | load process CPU s R / etcd |"
            : "| phase | Replication CPU s | Replication ms/1k | load process CPU s |");
        sb.AppendLine(hasEtcd ? "|---|---|---:|---|---:|---|" : "|---|---|---:|---|");
        var phases = clients.Select(c => ("write", c)).Concat(clients.Select(c => ("read", c))).Append(("import", 1));
        foreach (var (kind, c) in phases)
        {
            string label = kind == "import" ? "import" : $"{kind} {c}";
            var (aCpu, aPer, aLoad) = CpuCells(rep, kind, c);
            if (hasEtcd)
            {
                var (bCpu, bPer, bLoad) = CpuCells(etcd, kind, c);
                sb.AppendLine($"| {label} | {aCpu} | {aPer} | {bCpu} | {bPer} | {aLoad} / {bLoad} |");
            }
            else sb.AppendLine($"| {label} | {aCpu} | {aPer} | {aLoad} |");
        }
        sb.AppendLine();

        sb.AppendLine("**Start-up, connections, idle and cold start** (every round)");
        sb.AppendLine();
        sb.AppendLine(hasEtcd ? "| measure | Replication | etcd |" : "| measure | Replication |");
        sb.AppendLine(hasEtcd ? "|---|---|---|" : "|---|---|");
        void Line(string measure, Func<LoadResult, string> cell) =>
            sb.AppendLine(hasEtcd
                ? $"| {measure} | {string.Join("; ", rep.Select(cell))} | {string.Join("; ", etcd.Select(cell))} |"
                : $"| {measure} | {string.Join("; ", rep.Select(cell))} |");
        Line("process start to listening, ms (each process)", r => string.Join(" / ", r.StartToListeningMs.Select(N)));
        Line("first process start to cluster serving, ms", r => N(r.StartToReadyMs));
        Line($"connect {rep.FirstOrDefault()?.ConnectClients ?? 64} clients at once, ms", r => N(r.ConnectMs));
        Line("idle CPU 1 s after the load, % of one core (each process)", r => string.Join(" / ", r.IdleCpu.Select(u => (100 * u.Total / Math.Max(r.IdleSeconds, 0.001)).ToString("0.0", Invariant))));
        if (rep.Concat(etcd).FirstOrDefault(r => r.SettledIdleCpu.Length > 0) is { } settledRound)
            Line($"idle CPU {settledRound.SettleSeconds:0} s after the load, % of one core (each process)", r => string.Join(" / ", r.SettledIdleCpu.Select(u => (100 * u.Total / Math.Max(r.SettledIdleSeconds, 0.001)).ToString("0.0", Invariant))));
        Line("cold: 1-client writes/s in each second after the cluster formed", r => string.Join(" / ", r.Phases.Where(p => p.Kind == "cold").Select(p => N(p.OpsPerSecond))));
        Line("warm-up: 16-client writes/s", r => string.Join(" / ", r.Phases.Where(p => p.Kind == "warmup").Select(p => N(p.OpsPerSecond))));
        void PwshLine(string env, double ms)
        {
            if (ms > 0)
                sb.AppendLine(hasEtcd
                    ? $"| fresh pwsh + Import-Module + Start-ReplicationNode to listening ({env}), ms | {N(ms)} | |"
                    : $"| fresh pwsh + Import-Module + Start-ReplicationNode to listening ({env}), ms | {N(ms)} |");
        }
        PwshLine("runtime defaults", run.PwshDefaultStartToListeningMs);
        PwshLine("service unit: no tiered compilation", run.PwshStartToListeningMs);
        sb.AppendLine();
        if (run.PwshNote.Length > 0) sb.AppendLine($"Start-ReplicationNode in a fresh pwsh: {run.PwshNote}.");
        foreach (var r in rep.Concat(etcd))
            if (r.LeadersAfter.Length > 0) sb.AppendLine($"After round {r.Round} of {Name(r.System)}: {r.LeadersAfter}.");
        long errors = run.Rounds.Sum(r => r.Phases.Sum(p => p.Errors));
        sb.AppendLine(errors == 0 ? "No request failed." : $"Failed requests: {string.Join("; ", run.Rounds.SelectMany(r => r.Phases.Where(p => p.Errors > 0).Select(p => $"{Name(r.System)} {r.Round} {p.Kind} {p.Clients}: {p.Errors} ({p.FirstError})")))}.");

        if (embedded.FirstOrDefault() is { } e)
        {
            sb.AppendLine();
            sb.AppendLine("**For comparison, the embedded cluster** (3 nodes inside the load process, same clients over loopback TCP; one process, so its CPU includes the clients'):");
            sb.AppendLine();
            sb.AppendLine(hasEtcd ? "| clients | writes/s | write ms | vs etcd | reads/s | read ms | vs etcd |" : "| clients | writes/s | write ms | reads/s | read ms |");
            sb.AppendLine(hasEtcd ? "|---:|---:|---|---:|---:|---|---:|" : "|---:|---:|---|---:|---|");
            foreach (int c in clients)
            {
                var w = e.Phase("write", c);
                var rd = e.Phase("read", c);
                sb.AppendLine(hasEtcd
                    ? $"| {c} | {N(w?.OpsPerSecond)} | {Ms(w)} | {Ratio(w?.OpsPerSecond, Median(etcd.Select(x => x.Phase("write", c)))?.OpsPerSecond)} | {N(rd?.OpsPerSecond)} | {Ms(rd)} | {Ratio(rd?.OpsPerSecond, Median(etcd.Select(x => x.Phase("read", c)))?.OpsPerSecond)} |"
                    : $"| {c} | {N(w?.OpsPerSecond)} | {Ms(w)} | {N(rd?.OpsPerSecond)} | {Ms(rd)} |");
            }
            sb.AppendLine();
            sb.AppendLine($"Embedded import: {N(e.Phase("import", 1)?.OpsPerSecond)} keys/s; connect {e.ConnectClients} clients: {N(e.ConnectMs)} ms.");
        }
        return sb.ToString();
    }

    private static string Row(string clients, string round, PhaseResult? a, PhaseResult? b, bool hasEtcd, double fsyncs, string kind)
    {
        if (hasEtcd) return $"| {clients} | {round} | {N(a?.OpsPerSecond)} | {Ms(a)} | {N(b?.OpsPerSecond)} | {Ms(b)} | {Ratio(a?.OpsPerSecond, b?.OpsPerSecond)} | {Other(a)} / {Other(b)} |";
        string reference = kind == "write" && fsyncs > 0 && a is not null ? (a.OpsPerSecond / fsyncs).ToString("0.00", Invariant) : "";
        return $"| {clients} | {round} | {N(a?.OpsPerSecond)} | {Ms(a)} | {reference} | {Other(a)} |";
    }

    private static string ImportRow(string round, PhaseResult? a, PhaseResult? b, bool hasEtcd) =>
        hasEtcd
            ? $"| {round} | {N(a?.OpsPerSecond)} | {Ms(a)} | {N(b?.OpsPerSecond)} | {Ms(b)} | {Ratio(a?.OpsPerSecond, b?.OpsPerSecond)} | {Other(a)} / {Other(b)} |"
            : $"| {round} | {N(a?.OpsPerSecond)} | {Ms(a)} | {Other(a)} |";

    /// <summary>Share of the machine other work took during the phase (the noise), e.g. "12%".</summary>
    private static string Other(PhaseResult? p) => p is null ? "" : $"{100 * p.OtherShare:0}%";

    /// <summary>Median over the rounds of CPU seconds per process, its kernel share, CPU per 1,000 requests, and the load process's CPU.</summary>
    private static (string PerProcess, string Per1k, string Load) CpuCells(List<LoadResult> results, string kind, int clients)
    {
        var ps = results.Select(r => r.Phase(kind, clients)).Where(p => p is not null).Select(p => p!).ToList();
        if (ps.Count == 0 || ps[0].ServerCpu.Length == 0) return ("", "", "");
        int n = ps[0].ServerCpu.Length;
        var perProcess = Enumerable.Range(0, n).Select(i =>
        {
            double total = MedianOf(ps.Select(p => p.ServerCpu.ElementAtOrDefault(i)?.Total ?? 0));
            double sys = MedianOf(ps.Select(p => p.ServerCpu.ElementAtOrDefault(i)?.System ?? 0));
            return $"{total.ToString("0.00", Invariant)} ({(total > 0 ? 100 * sys / total : 0):0}%)";
        });
        // Requests, not keys: an import request carries many keys (ImportBatch), so its cost is shown per 1,000 keys instead.
        double per1k = MedianOf(ps.Select(p => p.Ops > 0 ? 1000 * 1000 * p.ServerCpu.Sum(u => u.Total) / p.Ops : 0));
        double load = MedianOf(ps.Select(p => p.ClientCpu.Total));
        return (string.Join(" / ", perProcess), per1k.ToString("0.0", Invariant), load.ToString("0.00", Invariant));
    }

    public static string Svg(BenchRun run)
    {
        var present = Systems.Where(s => run.Rounds.Any(r => r.System == s.System)).ToArray();
        int[] clients = run.Rounds.FirstOrDefault()?.Phases.Where(p => p.Kind == "write").Select(p => p.Clients).ToArray() ?? [];
        var panels = new (string Title, Func<PhaseResult, double> Value, string Kind)[]
        {
            ("Durable majority writes/s", p => p.OpsPerSecond, "write"),
            ("Linearizable reads/s", p => p.OpsPerSecond, "read"),
            ("Write latency p99, ms (lower is better)", p => p.P99, "write"),
        };
        const int panelWidth = 320, panelHeight = 260, top = 70, left = 50;
        int width = panels.Length * panelWidth + 20, height = top + panelHeight + 60;
        var sb = new StringBuilder();
        sb.AppendLine($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">");
        sb.AppendLine($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>");
        sb.AppendLine($"<text x=\"10\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{X($"Replication bench, {run.Started}: bars are medians, dots are rounds")}</text>");
        for (int s = 0; s < present.Length; s++)
        {
            int lx = 10 + s * 300;
            sb.AppendLine($"<rect x=\"{lx}\" y=\"30\" width=\"12\" height=\"12\" fill=\"{present[s].Color}\"/><text x=\"{lx + 16}\" y=\"40\">{X(present[s].Label)}</text>");
        }
        for (int pi = 0; pi < panels.Length; pi++)
        {
            var (title, value, kind) = panels[pi];
            int ox = pi * panelWidth + left;
            int plotWidth = panelWidth - left - 20;
            double max = run.Rounds.SelectMany(r => r.Phases.Where(p => p.Kind == kind)).Select(value).DefaultIfEmpty(1).Max();
            double scale = 4 * NiceStep(max * 1.05 / 4); // four gridlines at round values
            sb.AppendLine($"<text x=\"{ox}\" y=\"{top - 10}\" font-weight=\"bold\">{X(title)}</text>");
            for (int g = 0; g <= 4; g++)
            {
                double y = top + panelHeight - panelHeight * g / 4.0;
                sb.AppendLine($"<line x1=\"{ox}\" y1=\"{F(y)}\" x2=\"{ox + plotWidth}\" y2=\"{F(y)}\" stroke=\"#ddd\"/>");
                sb.AppendLine($"<text x=\"{ox - 4}\" y=\"{F(y + 4)}\" text-anchor=\"end\" fill=\"#555\">{X(Short(scale * g / 4))}</text>");
            }
            double groupWidth = plotWidth / (double)Math.Max(1, clients.Length);
            double barWidth = (groupWidth - 16) / Math.Max(1, present.Length);
            for (int ci = 0; ci < clients.Length; ci++)
            {
                double gx = ox + ci * groupWidth + 8;
                sb.AppendLine($"<text x=\"{F(gx + (groupWidth - 16) / 2)}\" y=\"{top + panelHeight + 16}\" text-anchor=\"middle\">{clients[ci]} client{(clients[ci] == 1 ? "" : "s")}</text>");
                for (int s = 0; s < present.Length; s++)
                {
                    var values = run.Rounds.Where(r => r.System == present[s].System).Select(r => r.Phase(kind, clients[ci])).Where(p => p is not null).Select(p => value(p!)).ToList();
                    if (values.Count == 0) continue;
                    double median = MedianOf(values);
                    double h = panelHeight * median / scale;
                    double bx = gx + s * barWidth;
                    sb.AppendLine($"<rect x=\"{F(bx)}\" y=\"{F(top + panelHeight - h)}\" width=\"{F(barWidth - 2)}\" height=\"{F(h)}\" fill=\"{present[s].Color}\"><title>{X($"{present[s].Label}, {clients[ci]} clients: median {Short(median)}; rounds {string.Join(", ", values.Select(Short))}")}</title></rect>");
                    sb.AppendLine($"<text x=\"{F(bx + (barWidth - 2) / 2)}\" y=\"{F(top + panelHeight - h - 3)}\" text-anchor=\"middle\" font-size=\"9\">{X(Short(median))}</text>");
                    foreach (var v in values)
                        sb.AppendLine($"<circle cx=\"{F(bx + (barWidth - 2) / 2)}\" cy=\"{F(top + panelHeight - panelHeight * v / scale)}\" r=\"2.5\" fill=\"black\" fill-opacity=\"0.6\"/>");
                }
            }
        }
        sb.AppendLine($"<text x=\"10\" y=\"{height - 12}\" fill=\"#555\">{X(run.Machine)}</text>");
        sb.AppendLine("</svg>");
        return sb.ToString();
    }

    public static string Html(BenchRun run, string text) =>
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Replication bench</title>\n" +
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:1100px} pre{font-size:12px;white-space:pre-wrap}</style></head><body>\n" +
        $"<h1>Replication bench</h1>\n{Svg(run)}\n<pre>{WebUtility.HtmlEncode(text)}</pre>\n</body></html>\n";

    private static List<LoadResult> Of(BenchRun run, string system) => run.Rounds.Where(r => r.System == system).OrderBy(r => r.Round).ToList();

    private static PhaseResult? Phase(this LoadResult r, string kind, int clients) => r.Phases.FirstOrDefault(p => p.Kind == kind && p.Clients == clients);

    /// <summary>A phase whose every figure is the median of the rounds' (null when no round has it).</summary>
    private static PhaseResult? Median(IEnumerable<PhaseResult?> phases)
    {
        var ps = phases.Where(p => p is not null).Select(p => p!).ToList();
        if (ps.Count == 0) return null;
        // Expressed over a nominal 1,000 s so the derived rates (OpsPerSecond, OtherShare) are the medians.
        const double seconds = 1000;
        return new PhaseResult
        {
            Kind = ps[0].Kind,
            Clients = ps[0].Clients,
            Ops = (long)Math.Round(MedianOf(ps.Select(p => p.OpsPerSecond)) * seconds),
            Seconds = seconds,
            OtherCpu = MedianOf(ps.Select(p => p.OtherShare)) * seconds * Environment.ProcessorCount,
            P50 = MedianOf(ps.Select(p => p.P50)),
            P99 = MedianOf(ps.Select(p => p.P99)),
            P999 = MedianOf(ps.Select(p => p.P999)),
        };
    }

    private static double MedianOf(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        if (v.Length == 0) return 0;
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    private static string Name(string system) => system switch { "replication" => "Replication", "etcd" => "etcd", _ => "embedded" };
    private static string N(double value) => value.ToString("N0", Invariant);
    private static string N(double? value) => value is { } v ? N(v) : "";
    private static string Ms(PhaseResult? p) => p is null ? "" : $"{D(p.P50)} / {D(p.P99)} / {D(p.P999)}";
    private static string D(double ms) => ms.ToString(ms < 10 ? "0.00" : "0.0", Invariant);
    private static string Ratio(double? a, double? b) => a is { } x && b is { } y && y > 0 ? (x / y).ToString("0.00", Invariant) : "";
    private static string F(double v) => v.ToString("0.#", Invariant);
    private static string X(string s) => WebUtility.HtmlEncode(s);

    private static string Short(double v) => v switch
    {
        >= 10_000 => (v / 1000).ToString("0", Invariant) + "k",
        >= 1_000 => (v / 1000).ToString("0.0", Invariant) + "k",
        >= 10 => v.ToString("0", Invariant),
        _ => v.ToString("0.0#", Invariant),
    };

    /// <summary>The smallest of 1, 2, 2.5, 5 or 10 times a power of ten that is at least <paramref name="v"/>: a gridline step.</summary>
    private static double NiceStep(double v)
    {
        if (v <= 0) return 1;
        double power = Math.Pow(10, Math.Floor(Math.Log10(v)));
        foreach (double m in new[] { 1.0, 2.0, 2.5, 5.0, 10.0 })
            if (m * power >= v) return m * power;
        return 10 * power;
    }

    /// <summary>Keys per import request in <paramref name="run"/> (500 in results saved before it was recorded).</summary>
    private static int ImportBatchOf(BenchRun run) => run.Rounds.FirstOrDefault(r => r.ImportBatch > 0)?.ImportBatch ?? 500;
}
