// The Grafana dashboard and the Prometheus scrape config under ops/ (issue 12): every metric the
// dashboard queries is one a broker on the cluster path exports (its `# TYPE` line is on
// /metrics), so a renamed or removed metric fails here instead of leaving an empty panel; and
// /ready on the cluster path carries its conditions.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Broker, defaultConfig } from '@streambus/broker';
import { StreamBusClient } from '@streambus/client';
import { MemoryFileSystem } from '@streambus/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from './harness.js';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close().catch(() => undefined);
});

interface Panel {
  title: string;
  targets: Array<{ expr: string }>;
}

/** The metric names an expression reads (histogram series mapped to their histogram). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\bstreambus_[a-z0-9_]+/g)].map((m) => m[0]);
}

describe('ops/ dashboard and scrape config', () => {
  it('every metric the dashboard queries is exported by a cluster-path broker; /ready names its conditions', async () => {
    const dashboard = JSON.parse(
      readFileSync(join(ROOT, 'ops/grafana/streambus-cluster.json'), 'utf8'),
    ) as { panels: Panel[] };
    const queried = new Set<string>();
    for (const p of dashboard.panels) {
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) {
        const names = metricNames(t.expr);
        expect(names.length, `${p.title}: ${t.expr}`).toBeGreaterThan(0);
        for (const n of names) queried.add(n);
      }
    }
    expect(queried.size).toBeGreaterThan(15);

    const config = defaultConfig();
    const broker = await Broker.start(
      {
        ...config,
        dataDir: '/data',
        listen: { host: '127.0.0.1', port: 0 },
        http: { host: '127.0.0.1', port: 0 },
        logLevel: 'silent',
      },
      { fileSystem: new MemoryFileSystem() },
    );
    open.push(broker);
    const base = `http://127.0.0.1:${broker.httpAddress!.port}`;
    // Not ready until registered (fenced until its first heartbeat): /ready says so.
    const first = (await (await fetch(`${base}/ready`)).json()) as {
      cluster: { missing: string[] };
    };
    for (const m of first.cluster.missing)
      expect(['registered', 'metadata-caught-up']).toContain(m);
    const deadline = Date.now() + 10_000;
    while ((await fetch(`${base}/ready`)).status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const sdk = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.address.port}` });
    open.push(sdk);
    await sdk.admin().createTopic({ name: 'dash', partitions: 2 });
    await sdk.producer().send({ topic: 'dash', value: 'x' });
    const text = await (await fetch(`${base}/metrics`)).text();
    const types = new Map<string, string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
    const exported = (name: string): boolean => {
      if (types.has(name)) return true;
      const base = name.replace(/_(bucket|sum|count)$/, '');
      return types.get(base) === 'histogram';
    };
    const missing = [...queried].filter((n) => !exported(n));
    expect(missing, 'queried by ops/grafana/streambus-cluster.json, not exported').toEqual([]);
    // Values the cluster of one has now: it leads both partitions and is the controller.
    expect(text).toMatch(/^streambus_partitions_led 2$/m);
    expect(text).toMatch(/^streambus_controller_is_leader 1$/m);
    expect(text).toMatch(/^streambus_replica_role\{topic="dash",partition="0",role="leader"\} 1$/m);
    // Each replica fsynced at least its term's no-op (durability 'always').
    expect(text).toMatch(
      /^streambus_replica_fsyncs_total\{topic="dash",partition="0"\} [1-9]\d*$/m,
    );

    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { cluster: unknown }).cluster).toMatchObject({
      ready: true,
      missing: [],
      replicasAssigned: 2,
      replicasOpen: 2,
    });

    const scrape = readFileSync(join(ROOT, 'ops/prometheus/prometheus.yml'), 'utf8');
    expect(scrape).toMatch(/metrics_path: \/metrics/);
    expect(scrape).toMatch(/job_name: streambus/);
  });
});
