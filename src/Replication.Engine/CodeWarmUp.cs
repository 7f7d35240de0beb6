using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using Replication.Engine.Client;
using Replication.Engine.Cluster;

namespace Replication.Engine;

/// <summary>
/// Compiles, once per process and in the background, the code of a leadership change that ahead-of-time compilation
/// (ReadyToRun) cannot hold, so that the first switchover or failover of a node's life is not slower than the next.
/// <para>
/// Why: the engine ships precompiled, but some code is compiled by the runtime on first use whatever the build does,
/// because its body lives in the framework: the async machinery instantiated over this assembly's async methods
/// (<c>AsyncTaskMethodBuilder&lt;T&gt;.Start&lt;TStateMachine&gt;</c>, the state-machine box, <c>AwaitUnsafeOnCompleted</c>
/// for each awaiter) and System.Text.Json's metadata and converters for each type put into JSON. A node process without
/// tiered compilation (the README's service unit) compiles each with full optimization, about 1.5 ms a method on the
/// 2-core test machine. A JIT log of the failover bench (issue 10) showed 470-540 methods compiled in the three nodes
/// during the first planned switchover of a run, most of them these, and the first one or two switchovers took
/// 70-180 ms against 10-40 ms for the rest, every process's continuations late at once.
/// </para>
/// <para>
/// What it prepares: the framework methods the state machines of the leadership-change and forwarding paths use
/// (<see cref="Paths"/>: switchover, transfer, forced recovery, suspension, leader watch, forwarded requests and
/// writes, the client session; the awaiters are read off each state machine's fields), and one JSON round trip of each
/// type those paths send (<see cref="JsonTypes"/>). Not everything: all 221 async methods of the engine came to about
/// 3,600 methods, 5-7 s of compilation per node at start, more than the first switchover costs. Runs on a background
/// thread; a failure is ignored (a method not prepared is compiled on first use, as without this).
/// </para>
/// </summary>
internal static class CodeWarmUp
{
    /// <summary>The async methods (by name, with their lambdas) whose framework code is prepared: the ones a JIT log of the
    /// first switchover showed compiled then.</summary>
    private static readonly Regex Paths = new(
        "Failover|Transfer|HandOver|ForceHere|Suspend|LeaderMoved|WatchLeaders|Forwarded|WriteShard|Route|AdminAsync|ServeAsync|RunAsync|HandleAsync|SendAsync",
        RegexOptions.CultureInvariant);

    /// <summary>The types in the JSON bodies of those paths.</summary>
    private static readonly Type[] JsonTypes =
    [
        typeof(FailoverArgs), typeof(ReplicationFailover), typeof(HandOverArgs), typeof(HandOverAnswer), typeof(TransferTargetAnswer),
        typeof(ReplicaAnswer), typeof(ForceHereArgs), typeof(SuspendArgs), typeof(LeaderWatchArgs), typeof(LeaderWatchAnswer), typeof(Empty),
    ];

    private static readonly Type[] Owners = [typeof(ClusterNode), typeof(ClusterClient), typeof(ClientSession), typeof(ClientConnection), typeof(ForwardContext)];

    private static int _started;

    /// <summary>Starts the warm-up once per process (later calls do nothing); <paramref name="log"/> gets its report (methods prepared, compilation time). Thread-safe.</summary>
    public static void Start(Action<string>? log = null)
    {
        if (Interlocked.Exchange(ref _started, 1) != 0) return;
        var thread = new Thread(() => Run(log)) { IsBackground = true, Name = "replication-warmup", Priority = ThreadPriority.BelowNormal };
        thread.Start();
    }

    private static void Run(Action<string>? log)
    {
        // The lowest scheduling priority (Linux nice 19): the compilation takes only CPU time that serving leaves unused.
        BackgroundPriority.LowerCurrentThread(BackgroundPriority.Lowest);
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        long compiledBefore = System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: true);
        var jitBefore = System.Runtime.JitInfo.GetCompilationTime(currentThread: true);
        int machines = 0;
        try { machines = PrepareAsyncMachinery().Count; } catch (Exception) { /* best effort */ }
        try { ExerciseJson(); } catch (Exception) { /* best effort */ }
        long compiled = System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: true) - compiledBefore;
        var jit = System.Runtime.JitInfo.GetCompilationTime(currentThread: true) - jitBefore;
        log?.Invoke($"code warm-up: {machines} async methods and {JsonTypes.Length} JSON types of the leadership-change paths prepared, " +
            $"{compiled} methods compiled ({jit.TotalMilliseconds:0} ms of compilation) in {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds:0} ms");
    }

    /// <summary>The names <see cref="Paths"/> looks for, one by one (tests check each still names an async method).</summary>
    internal static IEnumerable<string> PathNames => Paths.ToString().Split('|');

    /// <summary>Prepares the framework's async methods over each non-generic state machine of <see cref="Owners"/> that
    /// <see cref="Paths"/> names; returns the state machines' names. Synchronous, on the calling thread.</summary>
    internal static List<string> PrepareAsyncMachinery()
    {
        const BindingFlags All = BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic;
        var core = typeof(AsyncTaskMethodBuilder).Assembly.GetType("System.Runtime.CompilerServices.AsyncMethodBuilderCore");
        var builders = new HashSet<Type>();
        var prepared = new List<string>();
        foreach (var declared in Owners.SelectMany(Nested))
        {
            if (!declared.IsValueType || !typeof(IAsyncStateMachine).IsAssignableFrom(declared) || !Paths.IsMatch(declared.Name)) continue;
            // A generic async method's code over reference types is one shared instantiation: prepared once over object.
            if (CloseOverObject(declared) is not { } machine) continue;
            if (machine.GetField("<>t__builder", All)?.FieldType is not { } builder) continue;
            var awaiters = machine.GetFields(All).Where(f => f.Name.StartsWith("<>u__", StringComparison.Ordinal)).Select(f => f.FieldType)
                .Where(t => !t.ContainsGenericParameters && t != typeof(object)).Distinct().ToArray();
            bool first = builders.Add(builder);
            foreach (var method in builder.GetMethods(All))
            {
                try
                {
                    if (!method.IsGenericMethodDefinition) { if (first) Prepare(method); }
                    else if (method.Name is "Start" or "GetStateMachineBox") Prepare(method.MakeGenericMethod(machine));
                    else if (method.Name == "AwaitUnsafeOnCompleted")
                        foreach (var awaiter in awaiters) Prepare(method.MakeGenericMethod(awaiter, machine));
                }
                catch (ArgumentException) { } // a constraint the pair does not meet
            }
            try { if (core?.GetMethod("Start", All) is { IsGenericMethodDefinition: true } start) Prepare(start.MakeGenericMethod(machine)); }
            catch (ArgumentException) { }
            PrepareBox(builder, machine);
            prepared.Add(machine.Name);
        }
        return prepared;
    }

    /// <summary><paramref name="type"/> itself, or its generic definition closed over object for every parameter; null when a constraint forbids that.</summary>
    private static Type? CloseOverObject(Type type)
    {
        if (!type.ContainsGenericParameters) return type;
        try { return type.MakeGenericType([.. type.GetGenericArguments().Select(_ => typeof(object))]); }
        catch (ArgumentException) { return null; }
    }

    private static IEnumerable<Type> Nested(Type type) =>
        type.GetNestedTypes(BindingFlags.Public | BindingFlags.NonPublic).SelectMany(t => Nested(t).Prepend(t));

    /// <summary>The builder's state-machine box for <paramref name="machine"/> (AsyncTaskMethodBuilder&lt;T&gt;.AsyncStateMachineBox&lt;TStateMachine&gt;): its class constructor and methods.</summary>
    private static void PrepareBox(Type builder, Type machine)
    {
        // A non-generic builder (Task) keeps its boxes in the generic one over the framework's VoidTaskResult.
        var generic = builder.IsGenericType ? builder : builder.GetField("m_builder", BindingFlags.Instance | BindingFlags.NonPublic)?.FieldType;
        if (generic is not { IsGenericType: true }) return;
        var open = generic.GetGenericTypeDefinition().GetNestedTypes(BindingFlags.NonPublic).FirstOrDefault(t => t.Name.StartsWith("AsyncStateMachineBox", StringComparison.Ordinal));
        if (open is null || open.GetGenericArguments().Length != generic.GetGenericArguments().Length + 1) return;
        try
        {
            var box = open.MakeGenericType([.. generic.GetGenericArguments(), machine]);
            RuntimeHelpers.RunClassConstructor(box.TypeHandle);
            foreach (var method in box.GetMethods(BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                if (!method.IsGenericMethodDefinition) Prepare(method);
        }
        catch (ArgumentException) { }
    }

    private static void Prepare(MethodInfo method)
    {
        if (method.IsAbstract) return;
        var declaring = method.DeclaringType!;
        RuntimeTypeHandle[] instantiation = [.. (declaring.IsGenericType ? declaring.GetGenericArguments() : Type.EmptyTypes)
            .Concat(method.IsGenericMethod ? method.GetGenericArguments() : Type.EmptyTypes).Select(t => t.TypeHandle)];
        RuntimeHelpers.PrepareMethod(method.MethodHandle, instantiation.Length == 0 ? null : instantiation);
    }

    /// <summary>Serializes and parses one sample of each of <see cref="JsonTypes"/> as the wire does (<see cref="WireJson.Options"/>).</summary>
    private static void ExerciseJson()
    {
        foreach (var type in JsonTypes)
        {
            try
            {
                string json = JsonSerializer.Serialize(RuntimeHelpers.GetUninitializedObject(type), type, WireJson.Options);
                JsonSerializer.Deserialize(json, type, WireJson.Options);
            }
            catch (Exception e) when (e is JsonException or NotSupportedException or ArgumentException or InvalidOperationException) { }
        }
    }
}
