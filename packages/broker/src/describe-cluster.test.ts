// DescribeCluster on a broker that is a cluster of one: itself, live, the controller, holding
// and leading every partition it has.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiKey } from '@streambus/protocol';
import { MemoryFileSystem } from '@streambus/storage';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Broker } from './broker.js';
import { defaultConfig } from './config.js';
import { RawClient } from './testing/raw-client.js';
import { testResources } from './testing/test-resources.js';

const res = testResources({ afterEach, afterAll });

describe('DescribeCluster (cluster of one)', () => {
  it('lists this broker as the live controller voter leading all its partitions', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-describe-cluster-'));
    res.dirs.push(dataDir);
    const broker = await Broker.start(
      {
        ...defaultConfig(),
        nodeId: 4,
        dataDir,
        listen: { host: '127.0.0.1', port: 0 },
        http: null,
        logLevel: 'silent',
      },
      { logger: pino({ level: 'silent' }), fileSystem: new MemoryFileSystem() },
    );
    res.open.push(broker);
    const c = await RawClient.connect(broker.address.port);
    res.open.push(c);
    await c.request(ApiKey.CREATE_TOPICS, {
      topics: [
        { name: 'a', partitions: 3, replicationFactor: -1, configs: {} },
        { name: 'b', partitions: 2, replicationFactor: 1, configs: {} },
      ],
      timeoutMs: 5000,
    });
    const md = await c.request(ApiKey.METADATA, { topics: null });
    const d = await c.request(ApiKey.DESCRIBE_CLUSTER, {});
    expect(d).toEqual({
      errorCode: 0,
      clusterId: md.clusterId,
      controllerId: 4,
      brokers: [
        {
          nodeId: 4,
          host: '127.0.0.1',
          port: broker.address.port,
          rack: null,
          live: true,
          fenced: false,
          isVoter: true,
          replicaCount: 5,
          leaderCount: 5,
        },
      ],
    });
  });
});
