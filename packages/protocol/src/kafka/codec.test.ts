// Unit tests of the Kafka codec: primitives, framing, the §3.3 ApiVersions vectors, header
// versions, every version of every API, the error map.

import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { allErrors, ErrorCode, isStreamBusError } from '../errors.js';
import { type ApiKeyName, Apis } from './apis.js';
import { KAFKAJS_KNOWN_CODE_MAX, kafkaErrorCode } from './error-map.js';
import {
  decodeRequest,
  decodeResponse,
  encodeApiVersionsFallback,
  encodeRequest,
  encodeResponse,
  expectsResponse,
  KafkaFrameParser,
  peekRequestHeader,
} from './frame.js';
import { KafkaReader } from './reader.js';
import {
  apiVersionsEntries,
  KAFKA_API_RANGES,
  OPTIONAL_API_RANGES,
  requestHeaderVersion,
  responseHeaderVersion,
} from './versions.js';
import { KafkaWriter, RAW_INLINE_BYTES_MAX } from './writer.js';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function code(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (isStreamBusError(err)) return err.code;
    throw err;
  }
  throw new Error('expected a typed error');
}

describe('kafka primitives', () => {
  it('varints and unsigned varints follow KIP-482 and §5.4', () => {
    const w = new KafkaWriter();
    w.varint(-1)
      .varint(0)
      .varint(2)
      .varint(8)
      .uvarint(300)
      .varlong(-2)
      .varlong(2 ** 40);
    const b = w.toBuffer();
    expect(b.subarray(0, 6).toString('hex')).toBe('01000410ac02');
    const r = new KafkaReader(b);
    expect([r.varint(), r.varint(), r.varint(), r.varint(), r.uvarint(), r.varlong()]).toEqual([
      -1, 0, 2, 8, 300, -2,
    ]);
    expect(r.varlong()).toBe(2 ** 40);
    r.expectEnd('varints');
  });

  it('refuses over-long and 33-bit unsigned varints', () => {
    expect(code(() => new KafkaReader(hex('ffffffffff01')).uvarint())).toBe(
      ErrorCode.INVALID_REQUEST,
    );
    expect(code(() => new KafkaReader(hex('ffffffff1f')).uvarint())).toBe(
      ErrorCode.INVALID_REQUEST,
    );
    expect(new KafkaReader(hex('ffffffff0f')).uvarint()).toBe(0xffffffff);
  });

  it('strings, compact strings, bytes and null', () => {
    const w = new KafkaWriter();
    w.nullableString('héllo').nullableString(null).compactNullableString('ab');
    w.compactNullableString(null)
      .nullableBytes(Buffer.from([1, 2]))
      .nullableBytes(null);
    w.compactNullableBytes(Buffer.from([3]));
    const r = new KafkaReader(w.toBuffer());
    expect(r.string()).toBe('héllo');
    expect(r.nullableString()).toBeNull();
    expect(r.compactString()).toBe('ab');
    expect(r.compactNullableString()).toBeNull();
    expect([...r.bytes()]).toEqual([1, 2]);
    expect(r.nullableBytes()).toBeNull();
    expect([...r.compactBytes()]).toEqual([3]);
    r.expectEnd('strings');
  });

  it('a null where the schema allows none, invalid UTF-8 and a bad boolean are typed errors', () => {
    expect(code(() => new KafkaReader(hex('ffff')).string())).toBe(ErrorCode.INVALID_REQUEST);
    expect(code(() => new KafkaReader(hex('00')).compactString())).toBe(ErrorCode.INVALID_REQUEST);
    expect(code(() => new KafkaReader(hex('0002c328')).string())).toBe(ErrorCode.INVALID_REQUEST);
    expect(code(() => new KafkaReader(hex('02')).bool())).toBe(ErrorCode.INVALID_REQUEST);
  });

  it('checks lengths and counts against the bytes left before allocating', () => {
    const responses = ErrorCode.CORRUPT_MESSAGE;
    expect(code(() => new KafkaReader(hex('7fffffff'), 0, 4, responses).bytes())).toBe(responses);
    expect(code(() => new KafkaReader(hex('7fffffff00')).arrayCount(1))).toBe(
      ErrorCode.INVALID_REQUEST,
    );
    expect(code(() => new KafkaReader(hex('0000000300000001')).arrayCount(4))).toBe(
      ErrorCode.INVALID_REQUEST,
    );
    expect(code(() => new KafkaReader(hex('ffffffff0f')).compactArrayCount(1))).toBe(
      ErrorCode.INVALID_REQUEST,
    );
    expect(new KafkaReader(hex('ffffffff')).arrayCount(1, true)).toBe(-1);
  });

  it('tagged fields: kept raw, bounded, strictly increasing', () => {
    const r = new KafkaReader(hex('02 00 01 aa 05 00'));
    const tags = r.taggedFields();
    expect(tags.map((t) => [t.tag, [...t.data]])).toEqual([
      [0, [0xaa]],
      [5, []],
    ]);
    expect(new KafkaWriter().taggedFields(tags).toBuffer().toString('hex')).toBe('020001aa0500');
    expect(code(() => new KafkaReader(hex('02 05 00 01 00')).taggedFields())).toBe(
      ErrorCode.INVALID_REQUEST,
    );
    expect(code(() => new KafkaReader(hex('7f 00')).taggedFields())).toBe(
      ErrorCode.INVALID_REQUEST,
    );
  });

  it('uuid, int64 bounds and the writer range checks', () => {
    const id = '0123456789abcdef0123456789abcdef';
    expect(new KafkaReader(new KafkaWriter().uuid(id).toBuffer()).uuid()).toBe(id);
    expect(code(() => new KafkaReader(hex('7fffffffffffffff')).int64())).toBe(
      ErrorCode.INVALID_REQUEST,
    );
    expect(new KafkaReader(hex('ffffffffffffffff')).int64()).toBe(-1);
    expect(code(() => new KafkaWriter().int16(40000))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(code(() => new KafkaWriter().int64(2 ** 60))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('the writer references large raw values instead of copying them and grows past a segment', () => {
    const big = Buffer.alloc(RAW_INLINE_BYTES_MAX, 7);
    const w = new KafkaWriter(16);
    w.int32(1).raw(big).int32(2);
    for (let i = 0; i < 1000; i++) w.int64(i);
    const chunks = w.chunks();
    expect(chunks).toContain(big);
    const all = w.toBuffer();
    expect(all.length).toBe(8 + big.length + 8000);
    expect(all.readInt32BE(4 + big.length)).toBe(2);
    expect(Number(all.readBigInt64BE(all.length - 8))).toBe(999);
  });
});

describe('kafka ApiVersions (§3.3)', () => {
  it('the v3 answer with the §1.2 set is the 135-byte test vector', () => {
    const frame = encodeResponse('ApiVersions', 3, 1, {
      errorCode: 0,
      apiKeys: apiVersionsEntries(KAFKA_API_RANGES),
      throttleTimeMs: 0,
    });
    const vector = hex(`
      00 00 00 83  00 00 00 01  00 00  12
      00 00 00 00 00 07 00  00 01 00 04 00 0b 00  00 02 00 01 00 03 00  00 03 00 01 00 04 00
      00 08 00 02 00 05 00  00 09 00 01 00 04 00  00 0a 00 00 00 02 00  00 0b 00 00 00 05 00
      00 0c 00 00 00 03 00  00 0d 00 00 00 01 00  00 0e 00 00 00 03 00  00 11 00 00 00 01 00
      00 12 00 00 00 03 00  00 13 00 02 00 04 00  00 14 00 00 00 01 00  00 16 00 00 00 01 00
      00 24 00 00 00 01 00  00 00 00 00  00`);
    expect(frame.length).toBe(135);
    expect(frame.equals(vector)).toBe(true);
    const back = decodeResponse('ApiVersions', 3, vector.subarray(4));
    expect(back.body.apiKeys).toHaveLength(17);
  });

  it('an unsupported ApiVersions version is answered with error 35 in a v0 body', () => {
    const ranges = KAFKA_API_RANGES.map((r) => (r.apiKey === 18 ? { ...r, maxVersion: 2 } : r));
    expect(
      encodeApiVersionsFallback(1, ranges).equals(
        hex('00000010 00000001 0023 00000001 0012 0000 0002'),
      ),
    ).toBe(true);
    expect(code(() => encodeApiVersionsFallback(1, []))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('v0 has no throttle time; v1 and v2 do', () => {
    const body = {
      errorCode: 0,
      apiKeys: [{ apiKey: 18, minVersion: 0, maxVersion: 3 }],
      throttleTimeMs: 5,
    };
    expect(encodeResponse('ApiVersions', 0, 0, body).length).toBe(4 + 4 + 2 + 4 + 6);
    expect(encodeResponse('ApiVersions', 1, 0, body).length).toBe(4 + 4 + 2 + 4 + 6 + 4);
    expect(
      decodeResponse('ApiVersions', 2, encodeResponse('ApiVersions', 2, 0, body).subarray(4)).body
        .throttleTimeMs,
    ).toBe(5);
  });

  it('the advertised tables hold only APIs the codec covers, inside its ranges', () => {
    for (const r of [...KAFKA_API_RANGES, ...OPTIONAL_API_RANGES]) {
      const a = Object.values(Apis).find((x) => x.key === r.apiKey);
      expect(a, `key ${r.apiKey}`).toBeDefined();
      // Produce is advertised from 0 for librdkafka's probes (§1.3) but decodes from 3.
      if (r.apiKey !== 0) expect(r.minVersion).toBeGreaterThanOrEqual(a!.codecMin);
      expect(r.maxVersion).toBe(a!.codecMax);
    }
  });
});

describe('kafka headers and frames', () => {
  it('header versions: flexible → request v2 / response v1, ApiVersions responses always v0', () => {
    expect(requestHeaderVersion(18, 3)).toBe(2);
    expect(requestHeaderVersion(18, 2)).toBe(1);
    expect(responseHeaderVersion(18, 3)).toBe(0);
    expect(requestHeaderVersion(3, 4)).toBe(1);
    expect(responseHeaderVersion(44, 1)).toBe(1);
    expect(responseHeaderVersion(44, 0)).toBe(0);
    expect(requestHeaderVersion(60, 0)).toBe(2);
  });

  it('unknown keys and versions outside the codec are typed, after a readable fixed header', () => {
    const unknownKey = hex('0000000a 001a 0000 00000009 ffff');
    expect(peekRequestHeader(unknownKey.subarray(4))).toEqual({
      apiKey: 26,
      apiVersion: 0,
      correlationId: 9,
    });
    expect(code(() => decodeRequest(unknownKey.subarray(4)))).toBe(ErrorCode.UNKNOWN_API_KEY);
    const produceV2 = hex('0000 0002 00000001 ffff');
    expect(code(() => decodeRequest(produceV2))).toBe(ErrorCode.UNSUPPORTED_VERSION);
    expect(code(() => decodeRequest(hex('0012 0004 00000001 ffff')))).toBe(
      ErrorCode.UNSUPPORTED_VERSION,
    );
  });

  it('Produce with acks=0 expects no response; everything else does', () => {
    const body = { transactionalId: null, acks: 0, timeoutMs: 1000, topics: [] };
    const header = { apiVersion: 7, correlationId: 1, clientId: null };
    const fireAndForget = decodeRequest(encodeRequest('Produce', header, body).subarray(4));
    expect(expectsResponse(fireAndForget)).toBe(false);
    const acked = decodeRequest(
      encodeRequest('Produce', header, { ...body, acks: -1 }).subarray(4),
    );
    expect(expectsResponse(acked)).toBe(true);
    const leave = encodeRequest(
      'LeaveGroup',
      { ...header, apiVersion: 1 },
      {
        groupId: 'g',
        memberId: 'm',
      },
    );
    expect(expectsResponse(decodeRequest(leave.subarray(4)))).toBe(true);
  });

  it('trailing bytes after a body are malformed', () => {
    const ok = encodeRequest(
      'ApiVersions',
      { apiVersion: 2, correlationId: 3, clientId: 'x' },
      {
        clientSoftwareName: '',
        clientSoftwareVersion: '',
      },
    );
    expect(decodeRequest(ok.subarray(4)).header.clientId).toBe('x');
    const extra = Buffer.concat([ok.subarray(4), Buffer.from([0])]);
    expect(code(() => decodeRequest(extra))).toBe(ErrorCode.INVALID_REQUEST);
  });

  it('the frame parser reassembles frames split anywhere and returns whole ones as views', () => {
    const a = encodeRequest(
      'Heartbeat',
      { apiVersion: 3, correlationId: 1, clientId: 'c' },
      {
        groupId: 'g',
        generationId: 1,
        memberId: 'm',
        groupInstanceId: null,
      },
    );
    const b = encodeRequest(
      'LeaveGroup',
      { apiVersion: 1, correlationId: 2, clientId: null },
      {
        groupId: 'g',
        memberId: 'm',
      },
    );
    const stream = Buffer.concat([a, b, a]);
    for (let cut = 1; cut < stream.length; cut += 3) {
      const p = new KafkaFrameParser();
      const frames = [...p.push(stream.subarray(0, cut)), ...p.push(stream.subarray(cut))];
      expect(frames.map((f) => decodeRequest(f).header.correlationId)).toEqual([1, 2, 1]);
      expect(p.idle).toBe(true);
    }
    const byByte = new KafkaFrameParser();
    const got: Buffer[] = [];
    for (const byte of stream) got.push(...byByte.push(Buffer.from([byte])));
    expect(got).toHaveLength(3);
    const whole = new KafkaFrameParser().push(stream);
    expect(whole[0]!.buffer).toBe(stream.buffer);
  });

  it('refuses oversized and undersized frames before buffering them, and stays failed', () => {
    const p = new KafkaFrameParser({ frameBytesMax: 1024 });
    expect(code(() => p.push(hex('00100000')))).toBe(ErrorCode.FRAME_TOO_LARGE);
    expect(code(() => p.push(hex('00')))).toBe(ErrorCode.FRAME_TOO_LARGE);
    expect(p.bufferedBytes).toBe(0);
    expect(code(() => new KafkaFrameParser().push(hex('ffffffff')))).toBe(
      ErrorCode.INVALID_REQUEST,
    );
    expect(code(() => new KafkaFrameParser().push(hex('00000003 aabbcc')))).toBe(
      ErrorCode.INVALID_REQUEST,
    );
    // "GET / HTTP/1.1" is a 1.2 GB size prefix: refused at once, nothing allocated.
    expect(code(() => new KafkaFrameParser().push(Buffer.from('GET / HTTP/1.1\r\n')))).toBe(
      ErrorCode.FRAME_TOO_LARGE,
    );
    expect(code(() => new KafkaFrameParser({ frameBytesMax: 4, frameBytesMin: 8 }))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
  });
});

const GOLDEN_DIR = fileURLToPath(new URL('../../testdata/kafka/', import.meta.url));

/** One request and one response body per API (from the golden frames where a client sent it). */
function samples(): Map<ApiKeyName, { request: unknown; response: unknown }> {
  const out = new Map<ApiKeyName, { request: unknown; response: unknown }>();
  const seen = new Map<ApiKeyName, number>();
  for (const file of readdirSync(GOLDEN_DIR).sort()) {
    const m = /-([A-Za-z]+)-v(\d+)\.bin$/.exec(file);
    if (m === null) continue;
    const name = m[1] as ApiKeyName;
    const version = Number(m[2]);
    // The highest version a client sent carries every field of the lower ones.
    if ((seen.get(name) ?? -1) >= version) continue;
    seen.set(name, version);
    const req = decodeRequest(readFileSync(GOLDEN_DIR + file).subarray(4));
    const resFile = GOLDEN_DIR + file.replace(/\.bin$/, '.response.bin');
    const res = decodeResponse(name, version, readFileSync(resFile).subarray(4));
    out.set(name, { request: req.body, response: res.body });
  }
  const configs = [
    {
      resourceType: 2,
      resourceName: 't',
      configs: [{ name: 'a', configOperation: 0, value: '1' }],
    },
  ];
  const altered = {
    throttleTimeMs: 0,
    responses: [{ errorCode: 0, errorMessage: null, resourceType: 2, resourceName: 't' }],
  };
  out.set('IncrementalAlterConfigs', {
    request: { resources: configs, validateOnly: false },
    response: altered,
  });
  out.set('DescribeCluster', {
    request: { includeClusterAuthorizedOperations: false },
    response: {
      throttleTimeMs: 0,
      errorCode: 0,
      errorMessage: null,
      clusterId: 'c',
      controllerId: 1,
      brokers: [{ brokerId: 1, host: 'h', port: 9092, rack: null }],
      clusterAuthorizedOperations: -2147483648,
    },
  });
  out.set('SaslHandshake', {
    request: { mechanism: 'PLAIN' },
    response: { errorCode: 0, mechanisms: ['PLAIN', 'SCRAM-SHA-256'] },
  });
  out.set('SaslAuthenticate', {
    request: { authBytes: Buffer.from('\0u\0p') },
    response: {
      errorCode: 0,
      errorMessage: null,
      authBytes: Buffer.alloc(0),
      sessionLifetimeMs: 0,
    },
  });
  if (!out.has('Heartbeat')) throw new Error('no Heartbeat golden');
  return out;
}

describe('kafka APIs at every version the codec covers', () => {
  const all = samples();
  it('has a sample of every API', () => {
    expect([...all.keys()].sort()).toEqual(Object.keys(Apis).sort());
  });
  for (const a of Object.values(Apis)) {
    it(`${a.name} v${a.codecMin}-${a.codecMax}: encode, decode, encode gives the same bytes`, () => {
      const s = all.get(a.name)!;
      for (let v = a.codecMin; v <= a.codecMax; v++) {
        const header = { apiVersion: v, correlationId: v, clientId: 'test' };
        const req = encodeRequest(a.name, header, s.request as never);
        const back = decodeRequest(req.subarray(4));
        expect(back.header.apiVersion).toBe(v);
        expect(encodeRequest(a.name, header, back.body as never).equals(req)).toBe(true);
        const res = encodeResponse(a.name, v, v, s.response as never);
        const resBack = decodeResponse(a.name, v, res.subarray(4));
        expect(encodeResponse(a.name, v, v, resBack.body as never).equals(res)).toBe(true);
      }
    });
  }

  it('a field a version lacks decodes to its default, and lower versions are shorter', () => {
    const s = all.get('Fetch')!;
    const v4 = encodeRequest(
      'Fetch',
      { apiVersion: 4, correlationId: 0, clientId: null },
      s.request as never,
    );
    const v11 = encodeRequest(
      'Fetch',
      { apiVersion: 11, correlationId: 0, clientId: null },
      s.request as never,
    );
    expect(v4.length).toBeLessThan(v11.length);
    const back = decodeRequest(v4.subarray(4));
    if (back.name !== 'Fetch') throw new Error(back.name);
    expect(back.body.sessionEpoch).toBe(-1);
    expect(back.body.rackId).toBe('');
    expect(back.body.topics[0]!.partitions[0]!.currentLeaderEpoch).toBe(-1);
  });

  it('null is refused where a version does not allow it', () => {
    const header = { apiVersion: 1, correlationId: 0, clientId: null };
    expect(code(() => encodeRequest('OffsetFetch', header, { groupId: 'g', topics: null }))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    const v2 = encodeRequest(
      'OffsetFetch',
      { ...header, apiVersion: 2 },
      { groupId: 'g', topics: null },
    );
    const back = decodeRequest(v2.subarray(4));
    if (back.name !== 'OffsetFetch') throw new Error(back.name);
    expect(back.body.topics).toBeNull();
    // The same bytes at v1 (null topics) are malformed.
    v2.writeInt16BE(1, 6);
    expect(code(() => decodeRequest(v2.subarray(4)))).toBe(ErrorCode.INVALID_REQUEST);
  });

  it('a missing field is a typed encoder error', () => {
    expect(
      code(() =>
        encodeRequest('Heartbeat', { apiVersion: 0, correlationId: 0, clientId: null }, {
          groupId: 'g',
        } as never),
      ),
    ).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});

describe('kafka error map', () => {
  it('every code in the StreamBus table maps to a code kafkajs 2.2.4 knows', () => {
    for (const e of allErrors()) {
      const k = kafkaErrorCode(e.code);
      expect(k, e.name).toBeGreaterThanOrEqual(-1);
      expect(k, e.name).toBeLessThanOrEqual(KAFKAJS_KNOWN_CODE_MAX);
    }
  });

  it('Kafka codes pass through; StreamBus-only codes keep their meaning and retriability', () => {
    expect(kafkaErrorCode(ErrorCode.NOT_LEADER_OR_FOLLOWER)).toBe(6);
    expect(kafkaErrorCode(ErrorCode.KAFKA_STORAGE_ERROR)).toBe(56);
    expect(kafkaErrorCode(ErrorCode.TOPIC_NOT_FOUND)).toBe(3);
    expect(kafkaErrorCode(ErrorCode.LOG_BACKPRESSURE)).toBe(7);
    expect(kafkaErrorCode(ErrorCode.SHUTTING_DOWN)).toBe(6);
    expect(kafkaErrorCode(ErrorCode.BROKER_ID_NOT_REGISTERED)).toBe(-1);
    expect(kafkaErrorCode(1189)).toBe(-1);
  });
});
