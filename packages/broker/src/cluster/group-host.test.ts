// RaftGroupHost with fake groups: only groups with work are processed, never twice at once,
// within the concurrency bound; messages routed by group (unknown ones dropped and counted);
// unreachable reports; one timer ticking every group in one pass.
import { type Message, message, type NodeId, type Term } from '@streambus/raft';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type GroupKey, type HostedGroup, MemoryTransportHub } from './contract.js';
import { RaftGroupHost } from './group-host.js';

let globalActive = 0;
let globalActiveMax = 0;

class FakeGroup implements HostedGroup {
  work = 0;
  ticks = 0;
  readonly steps: Message[] = [];
  readonly unreachable: NodeId[] = [];
  active = 0;
  activeMax = 0;
  processCalls = 0;
  tickMakesWork = false;
  failProcess = false;
  failStep = false;
  /** As PartitionReplica.quiesced; undefined: a group that never says (ticked always). */
  quiesced: boolean | undefined = undefined;

  constructor(readonly key: GroupKey) {}

  tick(): void {
    this.ticks++;
    if (this.tickMakesWork) this.work++;
  }
  step(m: Message): void {
    if (this.failStep) throw new Error('broken group');
    this.steps.push(m);
    this.work++;
  }
  reportUnreachable(peer: NodeId): void {
    this.unreachable.push(peer);
  }
  hasWork(): boolean {
    return this.work > 0;
  }
  async process(): Promise<void> {
    this.processCalls++;
    this.active++;
    globalActive++;
    this.activeMax = Math.max(this.activeMax, this.active);
    globalActiveMax = Math.max(globalActiveMax, globalActive);
    await new Promise((r) => setImmediate(r));
    this.active--;
    globalActive--;
    this.work = Math.max(0, this.work - 1);
    if (this.failProcess) throw new Error('process must not reject');
  }
}

const hosts: RaftGroupHost[] = [];
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.close();
  vi.restoreAllMocks();
  globalActive = 0;
  globalActiveMax = 0;
});

function host(options: ConstructorParameters<typeof RaftGroupHost>[0] = {}): RaftGroupHost {
  const h = new RaftGroupHost({ manual: true, ...options });
  hosts.push(h);
  return h;
}

function groups(h: RaftGroupHost, count: number): FakeGroup[] {
  const out: FakeGroup[] = [];
  for (let i = 0; i < count; i++) {
    const g = new FakeGroup({ topicId: 1 + (i % 7), partition: i });
    h.add(g);
    out.push(g);
  }
  return out;
}

const hb = (from: number, to: number) =>
  message({ type: 'heartbeat', from: from as NodeId, to: to as NodeId, term: 1 as Term });

describe('RaftGroupHost', () => {
  it('processes only the groups that have work', async () => {
    const h = host();
    const gs = groups(h, 1000);
    for (const i of [3, 500, 999]) {
      gs[i]!.work = 1;
      h.notify(gs[i]!.key);
    }
    h.notify({ topicId: 99, partition: 0 }); // not hosted: ignored
    await h.runPending();
    expect(gs.filter((g) => g.processCalls > 0).map((g) => g.key.partition)).toEqual([3, 500, 999]);
    // A tick that makes no work processes nothing.
    h.tickOnce();
    await h.runPending();
    expect(gs.every((g) => g.ticks === 1)).toBe(true);
    expect(h.stats().processed).toBe(3);
    gs[10]!.tickMakesWork = true;
    h.tickOnce();
    await h.runPending();
    expect(gs[10]!.processCalls).toBe(1);
    expect(h.stats().processed).toBe(4);
  });

  it('never runs one group twice at once and bounds the groups running', async () => {
    const h = host({ processConcurrencyMax: 4 });
    const gs = groups(h, 100);
    for (const g of gs) {
      g.work = 3;
      h.notify(g.key);
    }
    const run = h.runPending();
    for (let i = 0; i < 10; i++) {
      h.notify(gs[0]!.key); // notified again while it runs
      await new Promise((r) => setImmediate(r));
    }
    await run;
    expect(gs.every((g) => g.activeMax === 1)).toBe(true);
    expect(globalActiveMax).toBe(4);
    // Each ran until it had no work left; gs[0]'s extra notifications ran at most once more each.
    expect(gs.slice(1).every((g) => g.processCalls === 3 && g.work === 0)).toBe(true);
    expect(gs[0]!.work).toBe(0);
    // Automatic mode, one group, room to spare: notified while its process() runs (each
    // notification schedules a pump), it still runs alone.
    const solo = groups(host({ manual: false, tickIntervalMs: 60_000 }), 1)[0]!;
    solo.work = 3;
    const h2 = hosts[hosts.length - 1]!;
    h2.notify(solo.key);
    const soloRun = h2.runPending();
    for (let i = 0; i < 6; i++) {
      h2.notify(solo.key);
      await new Promise((r) => setImmediate(r));
    }
    await soloRun;
    expect(solo.activeMax).toBe(1);
    expect(solo.processCalls).toBeGreaterThanOrEqual(3);
  });

  it('routes inbound messages by group and drops those for groups not hosted', async () => {
    const hub = new MemoryTransportHub();
    const t1 = hub.transport(1 as NodeId);
    const t2 = hub.transport(2 as NodeId);
    const h = host({ transport: t1 });
    const [a, b] = groups(h, 2) as [FakeGroup, FakeGroup];
    t2.send(a.key, [hb(2, 1)]);
    t2.send({ topicId: 50, partition: 3 }, [hb(2, 1), hb(2, 1)]);
    await new Promise((r) => setImmediate(r));
    expect(a.steps.length).toBe(1);
    expect(b.steps.length).toBe(0);
    expect(h.stats().droppedUnknownGroup).toBe(2);
    expect(h.stats().pending).toBe(1);
    await h.runPending();
    expect(a.processCalls).toBe(1);
    expect(b.processCalls).toBe(0);
    await t1.close();
    await t2.close();
  });

  it('reports an unreachable peer to the groups and contains a broken group', async () => {
    let report: ((peer: NodeId) => void) | null = null;
    const h = host({
      transport: {
        self: 1 as NodeId,
        send: () => {},
        setMessageHandler: () => {},
        request: () => Promise.reject(new Error('unused')),
        setRequestHandler: () => {},
        setUnreachableHandler: (fn) => {
          report = fn;
        },
        close: async () => {},
      },
    });
    const gs = groups(h, 3);
    (report as unknown as (peer: NodeId) => void)(3 as NodeId);
    expect(gs.every((g) => g.unreachable.join() === '3')).toBe(true);
    gs[1]!.failStep = true;
    h.deliver(gs[1]!.key, hb(2, 1));
    h.deliver(gs[2]!.key, hb(2, 1));
    expect(h.stats().groupErrors).toBe(1);
    expect(gs[2]!.steps.length).toBe(1);
    gs[2]!.failProcess = true;
    await h.runPending();
    expect(h.stats().processRejections).toBe(1);
    expect(() => h.add(new FakeGroup(gs[0]!.key))).toThrow(/already hosted/);
    h.remove(gs[0]!.key);
    expect(h.has(gs[0]!.key)).toBe(false);
  });

  it('finishes a burst of work for 1,000 groups within one turn of the event loop', async () => {
    // Turns are counted by a setImmediate chain; a transport flushing once per turn (PeerLinks)
    // sends one frame per peer for everything processed in the same turn.
    let turn = 0;
    let counting = true;
    const bump = () => {
      turn++;
      if (counting) setImmediate(bump);
    };
    setImmediate(bump);
    const turnsOf = async (burst: number) => {
      const h = host({ manual: false, tickIntervalMs: 60_000, processBurstMax: burst });
      const turns = new Set<number>();
      const gs = groups(h, 1000);
      for (const g of gs) {
        g.process = async () => {
          turns.add(turn);
          g.work = 0;
        };
        g.work = 1;
        h.notify(g.key);
      }
      await h.runPending();
      return turns.size;
    };
    expect(await turnsOf(4096)).toBe(1);
    expect(await turnsOf(64)).toBeGreaterThan(10);
    counting = false;
  });

  it('ticks every group from one timer, in one pass per interval', async () => {
    const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
    const h = host({ manual: false, tickIntervalMs: 10 });
    const gs = groups(h, 1000);
    await new Promise((r) => setTimeout(r, 80));
    expect(setIntervalSpy).toHaveBeenCalledTimes(1);
    const ticks = gs[0]!.ticks;
    expect(ticks).toBeGreaterThanOrEqual(2);
    expect(gs.every((g) => g.ticks === ticks)).toBe(true);
    // Automatic mode processes notified work without runPending being called.
    gs[7]!.work = 1;
    h.notify(gs[7]!.key);
    await new Promise((r) => setTimeout(r, 20));
    expect(gs[7]!.processCalls).toBe(1);
    await h.close();
    const after = gs[0]!.ticks;
    await new Promise((r) => setTimeout(r, 30));
    expect(gs[0]!.ticks).toBe(after);
  });

  it('stops ticking quiesced groups without work until a message, a notify or an unreachable peer wakes them', async () => {
    const h = host();
    const gs = groups(h, 1000);
    for (const g of gs) g.quiesced = true;
    const plain = new FakeGroup({ topicId: 99, partition: 0 });
    h.add(plain);
    h.tickOnce();
    expect(h.stats().groupTicks).toBe(1001);
    // Idle: only the group that never says it is quiesced is ticked.
    for (let i = 0; i < 10; i++) h.tickOnce();
    expect(h.stats()).toMatchObject({ groupTicks: 1011, awake: 1 });
    expect(gs[5]!.ticks).toBe(1);
    // A message wakes its group: ticked again until it is quiet and without work.
    h.deliver(gs[5]!.key, hb(2, 1));
    await h.runPending();
    h.tickOnce();
    expect(gs[5]!.ticks).toBe(2);
    h.tickOnce();
    expect(gs[5]!.ticks).toBe(2);
    // A group that stopped being quiesced stays awake (ticked every time) while it says so.
    gs[6]!.quiesced = false;
    h.notify(gs[6]!.key);
    for (let i = 0; i < 3; i++) h.tickOnce();
    expect(gs[6]!.ticks).toBe(4);
    // An unreachable peer wakes every group (a quiesced leader must find out who answers).
    h.reportUnreachable(3 as NodeId);
    const before = h.stats().groupTicks;
    h.tickOnce();
    expect(h.stats().groupTicks - before).toBe(1001);
  });

  it('runs tick listeners after the groups in the same tick; a throwing one does not stop the rest', () => {
    const h = host();
    const [g] = groups(h, 1);
    const seen: number[] = [];
    h.onTick(() => {
      throw new Error('broken listener');
    });
    const off = h.onTick(() => seen.push(g!.ticks));
    h.tickOnce();
    h.tickOnce();
    expect(seen).toEqual([1, 2]);
    off();
    h.tickOnce();
    expect(seen).toEqual([1, 2]);
    expect(h.stats().ticks).toBe(3);
  });
});
