// The CLI's cluster surface against a cluster of fake brokers: --replication-factor, topic
// describe with leader epoch, replicas and ISR, cluster describe, and comma-separated bootstrap
// lists (flag and STREAMBUS_BOOTSTRAP) whose first address is dead.
import { deadAddress, FakeCluster } from '@streambus/client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from './testing/run-cli.js';

let cluster: FakeCluster;
let b: string[];
let dead: string;

beforeAll(async () => {
  cluster = await FakeCluster.start(3);
  b = ['--bootstrap', cluster.bootstrap];
  dead = await deadAddress();
});
afterAll(async () => {
  await cluster.close();
});

describe('streambus on a cluster (fake brokers)', () => {
  it('creates a topic with a replication factor and describes leaders, epochs, replicas, ISR', async () => {
    expect(
      await run(['topic', 'create', 'r', '--partitions', '2', '--replication-factor', '3', ...b]),
    ).toMatchObject({ code: 0, stdout: 'created topic r with 2 partitions, 3 replicas each\n' });
    const tooMany = await run(['topic', 'create', 'x', '--replication-factor', '4', ...b]);
    expect(tooMany).toMatchObject({
      code: 1,
      stderr: 'streambus: replication factor 4: this cluster has 3 brokers\n',
    });
    expect(await run(['topic', 'create', 'x', '--replication-factor', '0', ...b])).toMatchObject({
      code: 2,
      stderr: "streambus: --replication-factor: expected an integer in 1..32767, got '0'\n",
    });
    cluster.moveLeader('r', 1, 3);
    const human = await run(['topic', 'describe', 'r', ...b]);
    expect(human.code).toBe(0);
    expect(human.stdout.split('\n').slice(0, 4)).toEqual([
      'topic r: 2 partitions',
      'partition  leader  epoch  replicas  isr    earliest  latest',
      '0          1       0      1,2,3     1,2,3  0         0',
      '1          3       1      1,2,3     1,2,3  0         0',
    ]);
    const json = JSON.parse(
      (await run(['topic', 'describe', 'r', '--output', 'json', ...b])).stdout,
    );
    expect(json.partitions[1]).toEqual({
      partition: 1,
      leader: 3,
      leaderEpoch: 1,
      replicas: [1, 2, 3],
      isr: [1, 2, 3],
      earliestOffset: 0,
      latestOffset: 0,
      offline: null,
    });
  });

  it('describes the cluster in human and json output', async () => {
    const human = await run(['cluster', 'describe', ...b]);
    expect(human.code).toBe(0);
    const [p1, p2, p3] = cluster.brokers.map((x) => x.port);
    expect(human.stdout).toBe(
      [
        'cluster fake-cluster: 3 brokers, controller 1',
        'id  address          state  controller  replicas  leaders',
        `1   127.0.0.1:${p1}  live   controller  2         1`,
        `2   127.0.0.1:${p2}  live   voter       2         0`,
        `3   127.0.0.1:${p3}  live   voter       2         1`,
        '',
      ].join('\n'),
    );
    const json = JSON.parse((await run(['cluster', 'describe', '--output', 'json', ...b])).stdout);
    expect(json).toEqual({
      clusterId: 'fake-cluster',
      controllerId: 1,
      brokers: [1, 2, 3].map((id) => ({
        id,
        address: `127.0.0.1:${cluster.broker(id).port}`,
        live: true,
        fenced: false,
        controller: id === 1 ? 'controller' : 'voter',
        replicas: 2,
        leaders: id === 2 ? 0 : 1,
      })),
    });
  });

  it('takes comma lists in --bootstrap and STREAMBUS_BOOTSTRAP; one answering is enough', async () => {
    const list = `${dead},${cluster.broker(2).bootstrap}`;
    expect(await run(['topic', 'list', '--bootstrap', list])).toMatchObject({
      code: 0,
      stdout: 'r\n',
    });
    expect(await run(['topic', 'list'], '', { STREAMBUS_BOOTSTRAP: list })).toMatchObject({
      code: 0,
      stdout: 'r\n',
    });
    const none = await run(['topic', 'list', '--bootstrap', `${dead},${dead}`]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^streambus: no broker answered \(tried .*is a broker running\?/);
  });
});
