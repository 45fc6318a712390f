// The cluster surface against a real broker process that is a cluster of one: `--node-id`, a
// bad `--peers` refused naming the key (dev-cluster's test starts brokers with good ones), `cluster describe`, `topic create
// --replication-factor` and the describe columns, and a comma bootstrap list with a dead address.
import { deadAddress } from '@streambus/client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BrokerProcess, removeDir, runCli, startBroker, tempDir } from './harness.js';

let broker: BrokerProcess;
let dir: string;
let dead: string;

beforeAll(async () => {
  dir = tempDir();
  dead = await deadAddress();
  broker = await startBroker(dir, ['--node-id', '7']);
});
afterAll(async () => {
  expect(await broker?.stop()).toBe(0);
  removeDir(dir);
});

describe('the cluster surface on a cluster of one', () => {
  it('broker start takes --node-id, and refuses a bad --peers list naming the key', async () => {
    expect(broker.output()).toMatch(/"nodeId":7/);
    const bad = await runCli([
      'broker',
      'start',
      '--data-dir',
      dir,
      '--listen',
      '127.0.0.1:0',
      '--peers',
      '1@h:1,1@g:2',
    ]);
    expect(bad).toMatchObject({
      code: 2,
      stderr:
        'streambus: peers: node id 1 is named twice (1@h:1 and 1@g:2); each voter has its own id\n',
    });
  });

  it('describes the cluster and creates topics with a replication factor', async () => {
    const b = ['--bootstrap', `${dead},${broker.bootstrap}`];
    const cluster = JSON.parse(
      (await runCli(['cluster', 'describe', '--output', 'json', ...b])).stdout,
    );
    expect(cluster).toMatchObject({
      controllerId: 7,
      brokers: [
        {
          id: 7,
          address: broker.bootstrap,
          live: true,
          fenced: false,
          controller: 'controller',
          replicas: 0,
          leaders: 0,
        },
      ],
    });
    expect(
      await runCli([
        'topic',
        'create',
        'rf',
        '--partitions',
        '2',
        '--replication-factor',
        '1',
        ...b,
      ]),
    ).toMatchObject({ code: 0, stdout: 'created topic rf with 2 partitions\n' });
    const tooMany = await runCli(['topic', 'create', 'rf3', '--replication-factor', '3', ...b]);
    expect(tooMany.code).toBe(1);
    expect(tooMany.stderr).toMatch(/^streambus: .*replication factor 3/i);
    // Each partition's Raft group has elected broker 7 (epoch = its term, 1) and committed the
    // term's no-op (a control batch at offset 0).
    const d = await runCli(['topic', 'describe', 'rf', ...b]);
    expect(d.stdout.split('\n').slice(1, 4)).toEqual([
      'partition  leader  epoch  replicas  isr  earliest  latest',
      '0          7       1      7         7    0         1',
      '1          7       1      7         7    0         1',
    ]);
    const human = await runCli(['cluster', 'describe', ...b]);
    expect(human.stdout).toContain(`7   ${broker.bootstrap}  live   controller  2         2`);
  });
});
