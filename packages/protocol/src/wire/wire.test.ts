import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, StreamBusError } from '../errors.js';
import {
  checkApiVersion,
  decodeRequest,
  decodeResponse,
  encodeErrorResponse,
  encodeRequest,
  encodeResponse,
  encodeResponseParts,
  negotiateVersion,
  packBody,
} from './codec.js';
import {
  encodeFrame,
  FRAME_HEADER_BYTES,
  type Frame,
  FrameFlag,
  FrameParser,
  writeFrameHeader,
} from './frame.js';
import { ApiKey, type ProduceRequest } from './messages.js';

function expectCode(fn: () => unknown, code: number): StreamBusError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StreamBusError);
    expect((err as StreamBusError).code).toBe(code);
    return err as StreamBusError;
  }
  throw new Error(`expected StreamBusError ${code}, nothing was thrown`);
}

describe('frame', () => {
  it('has the documented header layout', () => {
    const f = encodeFrame(
      { apiKey: 6, apiVersion: 2, correlationId: 0xdeadbeef, flags: FrameFlag.NO_RESPONSE },
      Buffer.from([0xaa, 0xbb]),
    );
    expect(f.toString('hex')).toBe('0000000c' + '0006' + '0002' + 'deadbeef' + '0004' + 'aabb');
    expect(FRAME_HEADER_BYTES).toBe(14);
  });

  it('parses frames split at every byte boundary and glued together', () => {
    const frames = [0, 1, 200, 70_000].map((n, i) =>
      encodeFrame({ apiKey: i, apiVersion: 0, correlationId: i + 1, flags: 0 }, Buffer.alloc(n, i)),
    );
    const stream = Buffer.concat(frames);
    for (const step of [1, 3, 14, 1000, stream.length]) {
      const parser = new FrameParser();
      const got: Frame[] = [];
      for (let p = 0; p < stream.length; p += step)
        got.push(...parser.push(stream.subarray(p, p + step)));
      expect(got.map((g) => g.correlationId)).toEqual([1, 2, 3, 4]);
      expect(got.map((g) => g.body.length)).toEqual([0, 1, 200, 70_000]);
      expect(got[3]!.body.every((b) => b === 3)).toBe(true);
      expect(parser.pendingBytes).toBe(0);
    }
  });

  it('refuses an oversized frame from its header alone, and stays failed', () => {
    const parser = new FrameParser({ frameBytesMax: 1024 });
    const header = Buffer.alloc(FRAME_HEADER_BYTES);
    writeFrameHeader(header, 0, { apiKey: 6, apiVersion: 0, correlationId: 1, flags: 0 }, 5000);
    const e = expectCode(() => parser.push(header), ErrorCode.FRAME_TOO_LARGE);
    expect(e.message).toContain('exceeds the maximum of 1024');
    expectCode(() => parser.push(Buffer.alloc(1)), ErrorCode.FRAME_TOO_LARGE);
  });

  it('rejects short lengths and unknown flags', () => {
    expectCode(
      () => new FrameParser().push(Buffer.from('0000000300000000000000000000', 'hex')),
      ErrorCode.MALFORMED_FRAME,
    );
    const bad = encodeFrame(
      { apiKey: 1, apiVersion: 0, correlationId: 1, flags: 0 },
      Buffer.alloc(0),
    );
    bad.writeUInt16BE(0x80, 12);
    expectCode(() => new FrameParser().push(bad), ErrorCode.MALFORMED_FRAME);
  });

  it('only ever throws StreamBusError on random bytes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 1, max: 40 }),
        (bytes, step) => {
          const parser = new FrameParser({ frameBytesMax: 4096 });
          try {
            for (let p = 0; p < bytes.length; p += step) {
              for (const frame of parser.push(bytes.subarray(p, p + step))) {
                try {
                  checkApiVersion(frame.apiKey, frame.apiVersion);
                  decodeRequest(frame.apiKey, frame);
                } catch (err) {
                  if (!(err instanceof StreamBusError)) throw err;
                }
              }
            }
          } catch (err) {
            if (!(err instanceof StreamBusError)) throw err;
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('codec', () => {
  const produce: ProduceRequest = {
    acks: -1,
    timeoutMs: 30_000,
    topics: [
      { name: 'orders', partitions: [{ partition: 2, records: Buffer.from('batch-bytes') }] },
    ],
  };

  it('round-trips a request, keeping record bytes as a view of the frame', () => {
    const wire = encodeRequest(ApiKey.PRODUCE, 77, produce);
    const [frame] = new FrameParser().push(wire);
    expect(frame!.apiKey).toBe(ApiKey.PRODUCE);
    expect(frame!.correlationId).toBe(77);
    const req = decodeRequest(ApiKey.PRODUCE, frame!);
    const records = req.topics[0]!.partitions[0]!.records;
    expect(records.toString()).toBe('batch-bytes');
    expect(records.buffer).toBe(wire.buffer);
    expect(req.acks).toBe(-1);
  });

  it('names the exact path of a shape error', () => {
    const body = packBody({
      ...produce,
      topics: [{ name: 'orders', partitions: [{ partition: 2, records: 'not bytes' }] }],
    });
    const frame: Frame = {
      apiKey: ApiKey.PRODUCE,
      apiVersion: 0,
      correlationId: 1,
      flags: 0,
      body,
    };
    const e = expectCode(() => decodeRequest(ApiKey.PRODUCE, frame), ErrorCode.INVALID_REQUEST);
    expect(e.message).toBe('produce.topics[0].partitions[0].records: expected bytes, got string');
    const acks = packBody({ ...produce, acks: 2 });
    expectCode(
      () => decodeRequest(ApiKey.PRODUCE, { ...frame, body: acks }),
      ErrorCode.INVALID_REQUEST,
    );
    const missing = packBody({ acks: 1, topics: [] });
    expect(
      expectCode(
        () => decodeRequest(ApiKey.PRODUCE, { ...frame, body: missing }),
        ErrorCode.INVALID_REQUEST,
      ).message,
    ).toContain('produce.timeoutMs: missing');
  });

  it('rejects garbage and trailing bytes as INVALID_REQUEST', () => {
    const frame: Frame = {
      apiKey: ApiKey.METADATA,
      apiVersion: 0,
      correlationId: 1,
      flags: 0,
      body: Buffer.from([0x92, 0x01]),
    };
    expectCode(() => decodeRequest(ApiKey.METADATA, frame), ErrorCode.INVALID_REQUEST);
    const trailing = Buffer.concat([packBody({ topics: null }), Buffer.from([1])]);
    expectCode(
      () => decodeRequest(ApiKey.METADATA, { ...frame, body: trailing }),
      ErrorCode.INVALID_REQUEST,
    );
  });

  it('round-trips responses and turns ERROR frames into the error they carry', () => {
    const reqHeader = {
      apiKey: ApiKey.INIT_PRODUCER_ID,
      apiVersion: 0,
      correlationId: 9,
      flags: 0,
    };
    const ok = encodeResponse(reqHeader, { errorCode: 0, producerId: 4000, producerEpoch: 0 });
    const [f1] = new FrameParser().push(ok);
    expect(decodeResponse(ApiKey.INIT_PRODUCER_ID, f1!)).toEqual({
      errorCode: 0,
      producerId: 4000,
      producerEpoch: 0,
    });
    const err = encodeErrorResponse(
      reqHeader,
      new StreamBusError(ErrorCode.UNSUPPORTED_VERSION, 'v9 no'),
    );
    const [f2] = new FrameParser().push(err);
    expect(f2!.flags & FrameFlag.ERROR).toBe(FrameFlag.ERROR);
    const e = expectCode(
      () => decodeResponse(ApiKey.INIT_PRODUCER_ID, f2!),
      ErrorCode.UNSUPPORTED_VERSION,
    );
    expect(e.message).toBe('v9 no');
    expectCode(() => decodeResponse(ApiKey.METADATA, f1!), ErrorCode.MALFORMED_FRAME);
  });

  it('encodeResponseParts yields exactly the bytes of encodeResponse, split after the header', () => {
    const reqHeader = { apiKey: ApiKey.FETCH, apiVersion: 0, correlationId: 77, flags: 0 };
    const records = Buffer.from('raw record batch bytes');
    const body = {
      topics: [
        {
          name: 't',
          partitions: [
            {
              errorCode: 0,
              partition: 3,
              highWatermark: 10,
              logStartOffset: 0,
              lastStableOffset: 10,
              records,
            },
          ],
        },
      ],
    };
    const [header, packed] = encodeResponseParts(reqHeader, body);
    expect(header.length).toBe(FRAME_HEADER_BYTES);
    const joined = Buffer.concat([header, packed]);
    expect(joined.equals(encodeResponse(reqHeader, body))).toBe(true);
    const [frame] = new FrameParser().push(joined);
    const decoded = decodeResponse(ApiKey.FETCH, frame!);
    expect(frame!.correlationId).toBe(77);
    expect(decoded.topics[0]!.partitions[0]!.records.equals(records)).toBe(true);
  });

  it('checks API keys and versions, and negotiates the highest common version', () => {
    expectCode(() => checkApiVersion(999, 0), ErrorCode.UNKNOWN_API_KEY);
    expectCode(() => checkApiVersion(ApiKey.FETCH, 7), ErrorCode.UNSUPPORTED_VERSION);
    expect(() => checkApiVersion(ApiKey.FETCH, 0)).not.toThrow();
    expect(negotiateVersion(ApiKey.FETCH, { minVersion: 0, maxVersion: 5 })).toBe(0);
    expect(negotiateVersion(ApiKey.FETCH, { minVersion: 3, maxVersion: 5 })).toBeNull();
  });

  it('only ever throws StreamBusError when decoding random bodies of every API', () => {
    fc.assert(
      fc.property(fc.anything(), fc.constantFrom(...Object.values(ApiKey)), (value, apiKey) => {
        let body: Buffer;
        try {
          body = packBody(value);
        } catch {
          return;
        }
        try {
          decodeRequest(apiKey, { apiKey, apiVersion: 0, correlationId: 1, flags: 0, body });
        } catch (err) {
          if (!(err instanceof StreamBusError)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('cluster messages', () => {
  const header = { apiKey: ApiKey.DESCRIBE_CLUSTER, apiVersion: 0, correlationId: 5, flags: 0 };
  const broker = {
    nodeId: 2,
    host: '127.0.0.1',
    port: 7072,
    rack: null,
    live: true,
    fenced: false,
    isVoter: true,
    replicaCount: 7,
    leaderCount: 3,
  };

  it('DescribeCluster round-trips and is advertised as its own API key', () => {
    expect(ApiKey.DESCRIBE_CLUSTER).toBe(12);
    expect(() => checkApiVersion(ApiKey.DESCRIBE_CLUSTER, 0)).not.toThrow();
    const [req] = new FrameParser().push(encodeRequest(ApiKey.DESCRIBE_CLUSTER, 5, {}));
    expect(decodeRequest(ApiKey.DESCRIBE_CLUSTER, req!)).toEqual({});
    const body = { errorCode: 0, clusterId: 'c-1', controllerId: 2, brokers: [broker] };
    const [res] = new FrameParser().push(encodeResponse(header, body));
    expect(decodeResponse(ApiKey.DESCRIBE_CLUSTER, res!)).toEqual(body);
  });

  it('DescribeCluster refuses a broker entry without its counts or with a negative one', () => {
    const { leaderCount: _omit, ...noLeaders } = broker;
    for (const [bad, message] of [
      [noLeaders, 'describe_cluster response.brokers[0].leaderCount: missing'],
      [{ ...broker, replicaCount: -1 }, 'describe_cluster response.brokers[0].replicaCount: -1'],
      [{ ...broker, live: 'yes' }, 'describe_cluster response.brokers[0].live: expected a boolean'],
    ] as const) {
      const frame: Frame = {
        ...header,
        flags: FrameFlag.RESPONSE,
        body: packBody({ errorCode: 0, clusterId: 'c', controllerId: -1, brokers: [bad] }),
      };
      const e = expectCode(
        () => decodeResponse(ApiKey.DESCRIBE_CLUSTER, frame),
        ErrorCode.INVALID_REQUEST,
      );
      expect(e.message).toContain(message);
    }
  });

  it('Metadata carries replicas, ISR, leader epoch, brokers and the controller', () => {
    const body = {
      clusterId: 'c-1',
      controllerId: 3,
      brokers: [
        { nodeId: 1, host: 'h1', port: 1, rack: null },
        { nodeId: 3, host: 'h3', port: 3, rack: 'r' },
      ],
      topics: [
        {
          errorCode: 0,
          name: 't',
          partitions: [
            { errorCode: 0, partition: 0, leaderId: 3, leaderEpoch: 4, replicas: [3, 1], isr: [3] },
          ],
        },
      ],
    };
    const mh = { apiKey: ApiKey.METADATA, apiVersion: 0, correlationId: 1, flags: 0 };
    const [f] = new FrameParser().push(encodeResponse(mh, body));
    expect(decodeResponse(ApiKey.METADATA, f!)).toEqual(body);
  });

  it('CreateTopics takes a replication factor; -1 asks for the cluster default', () => {
    const req = {
      topics: [{ name: 't', partitions: 3, replicationFactor: -1, configs: {} }],
      timeoutMs: 1000,
    };
    const [f] = new FrameParser().push(encodeRequest(ApiKey.CREATE_TOPICS, 1, req));
    expect(decodeRequest(ApiKey.CREATE_TOPICS, f!).topics[0]!.replicationFactor).toBe(-1);
  });
});
