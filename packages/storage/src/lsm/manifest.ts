// The LSM manifest (`MANIFEST`): which sorted tables make up the store, level by level, which
// write-ahead logs still need replaying, and the next file number. It is rewritten whole and
// atomically (temp file, fsync, rename, fsync dir) after every flush and compaction, so after a
// crash it names either the old or the new set of tables, never a mix.
//
// Format: "SBLSMMF1", u32 crc32c(json), u32 jsonLength, json (UTF-8) of `ManifestState`, with
// table keys hex-encoded. A damaged manifest is a CORRUPT_DATA error naming the file.
import { crc32c, ErrorCode, StreamBusError } from '@streambus/protocol';

const MAGIC = 'SBLSMMF1';

export interface TableMeta {
  readonly fileNumber: number;
  /** latin1 key strings. */
  readonly smallest: string;
  readonly largest: string;
  readonly sizeBytes: number;
  readonly entryCount: number;
}

export interface ManifestState {
  readonly nextFileNumber: number;
  /** WALs numbered >= this are replayed at open; older ones are obsolete. */
  readonly walNumberMin: number;
  /** Highest sequence number stored in tables. */
  readonly lastSeq: number;
  /** levels[0] newest first (tables may overlap); deeper levels sorted and disjoint. */
  readonly levels: readonly (readonly TableMeta[])[];
}

interface Json {
  nextFileNumber: number;
  walNumberMin: number;
  lastSeq: number;
  levels: Array<Array<{ n: number; s: string; l: string; b: number; c: number }>>;
}

export function encodeManifest(m: ManifestState): Buffer {
  const json: Json = {
    nextFileNumber: m.nextFileNumber,
    walNumberMin: m.walNumberMin,
    lastSeq: m.lastSeq,
    levels: m.levels.map((lv) =>
      lv.map((t) => ({
        n: t.fileNumber,
        s: Buffer.from(t.smallest, 'latin1').toString('hex'),
        l: Buffer.from(t.largest, 'latin1').toString('hex'),
        b: t.sizeBytes,
        c: t.entryCount,
      })),
    ),
  };
  const body = Buffer.from(JSON.stringify(json), 'utf8');
  const out = Buffer.allocUnsafe(16 + body.length);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32BE(crc32c(body) >>> 0, 8);
  out.writeUInt32BE(body.length, 12);
  body.copy(out, 16);
  return out;
}

export function decodeManifest(path: string, data: Buffer): ManifestState {
  const bad = (what: string) =>
    new StreamBusError(ErrorCode.CORRUPT_DATA, `corrupt LSM manifest ${path}: ${what}`);
  if (data.length < 16 || data.toString('latin1', 0, 8) !== MAGIC) throw bad('bad magic');
  const len = data.readUInt32BE(12);
  if (16 + len !== data.length) throw bad('length does not match the file size');
  const body = data.subarray(16);
  if (crc32c(body) >>> 0 !== data.readUInt32BE(8)) throw bad('fails its CRC');
  let json: Json;
  try {
    json = JSON.parse(body.toString('utf8')) as Json;
  } catch (err) {
    throw bad(`unparsable (${(err as Error).message})`);
  }
  return {
    nextFileNumber: json.nextFileNumber,
    walNumberMin: json.walNumberMin,
    lastSeq: json.lastSeq,
    levels: json.levels.map((lv) =>
      lv.map((t) => ({
        fileNumber: t.n,
        smallest: Buffer.from(t.s, 'hex').toString('latin1'),
        largest: Buffer.from(t.l, 'hex').toString('latin1'),
        sizeBytes: t.b,
        entryCount: t.c,
      })),
    ),
  };
}
