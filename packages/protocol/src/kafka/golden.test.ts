// Golden frames captured from kafkajs 2.2.4, kcat 1.7.1 and confluent-kafka 1.7.0 (both on
// librdkafka 2.0.2) and @platformatic/kafka 2.12.1 by scripts/kafka-capture.mjs
// (testdata/kafka/README.md): every request frame decodes and re-encodes to identical bytes,
// every response the clients accepted likewise, and a few facts from kafka-protocol.md are
// checked on the real bytes.

import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readBatchHeader } from '../record-batch.js';
import { type ApiKeyName, Apis } from './apis.js';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from './frame.js';

const DIR = fileURLToPath(new URL('../../testdata/kafka/', import.meta.url));
const FILE = /^(kafkajs|kcat|confluent|platformatic)-(.+)-([A-Za-z]+)-v(\d+)\.bin$/;

interface Golden {
  file: string;
  client: string;
  step: string;
  api: ApiKeyName;
  version: number;
  request: Buffer;
  response: Buffer;
}

function load(): Golden[] {
  const out: Golden[] = [];
  for (const file of readdirSync(DIR).sort()) {
    const m = FILE.exec(file);
    if (m === null || file.endsWith('.response.bin')) continue;
    out.push({
      file,
      client: m[1]!,
      step: m[2]!,
      api: m[3]! as ApiKeyName,
      version: Number(m[4]),
      request: readFileSync(DIR + file),
      response: readFileSync(DIR + file.replace(/\.bin$/, '.response.bin')),
    });
  }
  return out;
}

const GOLDEN = load();

function frameOf(prefixed: Buffer): Buffer {
  expect(prefixed.readInt32BE(0)).toBe(prefixed.length - 4);
  return prefixed.subarray(4);
}

function find(client: string, step: string, api: string): Golden {
  const g = GOLDEN.find((x) => x.client === client && x.step === step && x.api === api);
  if (g === undefined) throw new Error(`no golden ${client}-${step}-${api}`);
  return g;
}

describe('kafka golden frames', () => {
  it('covers the APIs the clients send', () => {
    const apis = new Set(GOLDEN.map((g) => `${g.client}:${g.api}`));
    for (const api of [
      'ApiVersions',
      'Metadata',
      'Produce',
      'Fetch',
      'ListOffsets',
      'FindCoordinator',
      'JoinGroup',
      'SyncGroup',
      'OffsetCommit',
      'OffsetFetch',
      'LeaveGroup',
      'InitProducerId',
    ]) {
      expect(apis.has(`kafkajs:${api}`), api).toBe(true);
      expect(apis.has(`kcat:${api}`) || apis.has(`confluent:${api}`), api).toBe(true);
    }
    for (const api of [
      'CreateTopics',
      'DeleteTopics',
      'DescribeConfigs',
      'AlterConfigs',
      'CreatePartitions',
    ]) {
      expect(apis.has(`kafkajs:${api}`), api).toBe(true);
    }
    expect(GOLDEN.length).toBeGreaterThan(50);
  });

  for (const g of GOLDEN) {
    it(`${g.file}: the request decodes and re-encodes to identical bytes`, () => {
      const req = decodeRequest(frameOf(g.request));
      expect(req.name).toBe(g.api);
      expect(req.header.apiVersion).toBe(g.version);
      const { apiKey: _key, ...header } = req.header;
      const again = encodeRequest(req.name, header, req.body as never);
      expect(again.equals(g.request)).toBe(true);
    });

    it(`${g.file}: the answer the client accepted decodes and re-encodes identically`, () => {
      const req = decodeRequest(frameOf(g.request));
      const res = decodeResponse(g.api, g.version, frameOf(g.response));
      expect(res.correlationId).toBe(req.header.correlationId);
      const again = encodeResponse(g.api, g.version, res.correlationId, res.body as never);
      expect(again.equals(g.response)).toBe(true);
    });
  }

  it('librdkafka opens with a 40-byte flexible ApiVersions v3 naming itself', () => {
    const g = find('kcat', 'list', 'ApiVersions');
    expect(g.version).toBe(3);
    expect(g.request.length).toBe(40);
    const req = decodeRequest(frameOf(g.request));
    expect(req.header.clientId).toBe('rdkafka');
    expect(req.body).toEqual({ clientSoftwareName: 'librdkafka', clientSoftwareVersion: '2.0.2' });
  });

  it('kcat -L asks Metadata v4 for no topics (empty, not null) and no auto-creation', () => {
    const req = decodeRequest(frameOf(find('kcat', 'list', 'Metadata').request));
    if (req.name !== 'Metadata') throw new Error(req.name);
    expect(req.body.topics).toEqual([]);
    expect(req.body.allowAutoTopicCreation).toBe(false);
  });

  it('kafkajs sends ApiVersions v2 and CreateTopics v3 with -1 partitions and replicas', () => {
    expect(find('kafkajs', 'admin', 'ApiVersions').version).toBe(2);
    const req = decodeRequest(frameOf(find('kafkajs', 'admin', 'CreateTopics').request));
    if (req.name !== 'CreateTopics') throw new Error(req.name);
    expect(req.header.apiVersion).toBe(3);
    expect(req.body.topics[0]).toMatchObject({
      name: 'golden',
      numPartitions: -1,
      replicationFactor: -1,
    });
  });

  const CODEC = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const;
  for (const [client, codec] of [
    ['kafkajs', 'none'],
    ['kafkajs', 'gzip'],
    ['kcat', 'none'],
    ['kcat', 'gzip'],
    ['kcat', 'snappy'],
    ['kcat', 'lz4'],
    ['kcat', 'zstd'],
    ['platformatic', 'none'],
    ['platformatic', 'gzip'],
    ['platformatic', 'snappy'],
    ['platformatic', 'lz4'],
  ] as const) {
    it(`${client} Produce v7 (${codec}) carries one raw magic-2 batch, as a view of the frame`, () => {
      const g = find(client, `produce-${codec}`, 'Produce');
      const frame = frameOf(g.request);
      const req = decodeRequest(frame);
      if (req.name !== 'Produce') throw new Error(req.name);
      expect(req.header.apiVersion).toBe(7);
      // @platformatic/kafka's default is acks=1 (leader only); the others default to all.
      expect(req.body.acks).toBe(client === 'platformatic' ? 1 : -1);
      const records = req.body.topics[0]!.partitions[0]!.records!;
      expect(records.buffer).toBe(frame.buffer);
      const h = readBatchHeader(records);
      expect(h.magic).toBe(2);
      expect(12 + h.batchLength).toBe(records.length);
      expect(h.attributes & 0x07).toBe(CODEC[codec]);
    });
  }

  it('idempotent producers get a producer id and send batches carrying it', () => {
    for (const client of ['kafkajs', 'kcat', 'platformatic'] as const) {
      const res = decodeResponse(
        'InitProducerId',
        1,
        frameOf(find(client, 'produce-idempotent', 'InitProducerId').response),
      );
      const req = decodeRequest(frameOf(find(client, 'produce-idempotent', 'Produce').request));
      if (req.name !== 'Produce') throw new Error(req.name);
      const h = readBatchHeader(req.body.topics[0]!.partitions[0]!.records!);
      expect(h.producerId).toBe(res.body.producerId);
      expect(h.baseSequence).toBe(0);
    }
  });

  it('Fetch v11 from both clients: isolation read_committed, no fetch sessions', () => {
    for (const client of ['kafkajs', 'kcat'] as const) {
      const req = decodeRequest(frameOf(find(client, 'consume', 'Fetch').request));
      if (req.name !== 'Fetch') throw new Error(req.name);
      expect(req.header.apiVersion).toBe(11);
      expect(req.body.isolationLevel).toBe(1);
      expect(req.body.sessionId).toBe(0);
      expect(req.body.sessionEpoch).toBe(-1);
    }
  });

  it('every golden API is one the codec lists', () => {
    for (const g of GOLDEN) expect(Apis[g.api].key).toBeGreaterThanOrEqual(0);
  });
});
